"""Progress on stderr: a bar redrawn in place on a terminal; plain lines where stderr is a log or a pipe."""
import sys
import time


def bar(label, fraction, text, width=30):
    """Redraw one progress line in place: `label: [#####.....] text`."""
    filled = int(width * min(max(fraction, 0.0), 1.0))
    sys.stderr.write(f"\r{label}: [{'#' * filled}{'.' * (width - filled)}] {text}\x1b[K")
    sys.stderr.flush()


class Items:
    """Progress over a known number of items (e.g. images of a batch) with rate and time left.

    On a terminal, item messages are printed above a bar that is redrawn after each item; elsewhere each
    item's message is one line prefixed with [i/n], so logs stay readable.
    """

    def __init__(self, total, label):
        self.total, self.label, self.done = total, label, 0
        self.start = time.perf_counter()
        self.interactive = sys.stderr.isatty()

    def item_done(self, message, always_show=False):
        """Count one item; `message` is shown on its own line in logs, on a terminal only if always_show."""
        self.done += 1
        if not self.interactive:
            print(f"[{self.done}/{self.total}] {message}", file=sys.stderr)
            return
        if always_show:
            sys.stderr.write(f"\r{message}\x1b[K\n")
        seconds = (time.perf_counter() - self.start) / self.done
        left = seconds * (self.total - self.done)
        bar(self.label, self.done / self.total,
            f"{self.done}/{self.total}, {seconds:.1f} s each, {int(left) // 60}:{int(left) % 60:02d} left")
        if self.done == self.total:
            sys.stderr.write("\n")
