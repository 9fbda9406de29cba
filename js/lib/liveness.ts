// Whether the kernel behind a view still answers. The kernel sets `busy` and answers clicks; once it has died
// or restarted nothing comes back, and a view would spin (or wait) forever without saying why. So the view
// pings every pingMs ({type: "aw:ping", id}) and the kernel answers ({type: "aw:pong", id}: widgets/base.py).
// Once the kernel has answered at least once (a standalone page has none, so it never warns), a ping left
// unanswered for timeoutMs reports the kernel lost; the next answer reports it back.

// anywidget's model: `on` takes ("change:x", () => void) and ("msg:custom", (msg, buffers) => void) alike.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handler = (...args: any[]) => void;

export interface PingModel {
  send?: (content: unknown) => void;
  on(event: string, fn: Handler): void;
  off(event?: string | null, fn?: Handler | null): void;
}

export const KERNEL_LOST =
  "The kernel is not answering: it died or restarted, or is busy running another cell. " +
  "Once it is back, run the cell that made this view again.";

export interface WatchOptions { pingMs?: number; timeoutMs?: number }

export function watchKernel(model: PingModel, onChange: (lost: boolean) => void,
  { pingMs = 5000, timeoutMs = 15000 }: WatchOptions = {}): () => void {
  if (typeof model.send !== "function") return () => {}; // no kernel at all (a standalone page)
  let sent = 0, answered = 0, sentAt = 0, heard = false, lost = false;
  const onMsg = (msg: unknown) => {
    const m = msg as { type?: string; id?: number } | null;
    if (!m || m.type !== "aw:pong" || typeof m.id !== "number") return;
    answered = Math.max(answered, m.id);
    heard = true;
    if (lost) { lost = false; onChange(false); }
  };
  const tick = () => {
    const waiting = answered < sent;
    if (waiting && Date.now() - sentAt < timeoutMs) return; // give the last ping its time
    if (waiting && heard && !lost) { lost = true; onChange(true); }
    // A new ping each time: a restarted kernel never answers the old one, but may answer this one.
    sent += 1;
    sentAt = Date.now();
    try {
      model.send?.({ type: "aw:ping", id: sent });
    } catch { /* a closed comm: the next tick tries again */ }
  };
  model.on("msg:custom", onMsg);
  tick();
  const timer = setInterval(tick, Math.max(10, Math.min(pingMs, timeoutMs / 3)));
  return () => { clearInterval(timer); model.off("msg:custom", onMsg); };
}
