import { defineTask, taskContext } from "qworker";

/** The classic: the web app saves an order, then hands the e-mail to the queue and returns at once. */
export const sendInvoiceEmail = defineTask(
  { name: "shop.send_invoice_email", queue: "default", retry: { max: 5, countdown: 2 } },
  async (orderId: number) => {
    const ctx = taskContext();
    // A real task would render the invoice and call the mail provider here.
    await new Promise((r) => setTimeout(r, 20));
    ctx.logger.debug(`invoice for order ${orderId} rendered`);
    return { orderId, sent: true };
  },
);

export const notifyWarehouse = defineTask("shop.notify_warehouse", async (orderId: number, items: string[] = []) => {
  await new Promise((r) => setTimeout(r, 10));
  return { orderId, items: items.length, notified: true };
});
