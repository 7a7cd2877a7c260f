"""Progress on stderr: a bar redrawn in place on a terminal; plain lines where stderr is a log or a pipe."""
import os
import sys
import time


def bar(label, fraction, text, width=30):
    """Redraw one progress line in place: `label: [#####.....] text`, within the terminal's width: a longer
    line would wrap, and each redraw, which goes back to the start of the last row only, would leave a copy
    above. The label (a file name) gives way first, then the bar, then the end of the text."""
    room = _columns() - 1  # some terminals wrap on the last column
    if len(label) + width + len(text) + 5 > room and len(label) > 12:
        label = label[:max(9, room - width - len(text) - 8)] + "..."
    width = max(10, min(width, room - len(label) - len(text) - 5))
    filled = int(width * min(max(fraction, 0.0), 1.0))
    _redraw(f"{label}: [{'#' * filled}{'.' * (width - filled)}] {text}"[:room])
    sys.stderr.flush()


_drawn = 0  # the length of the line that the last redraw left on stderr's terminal; 0 at the start of a line


def _redraw(line, end=""):
    """`line` over the one the last redraw left, then `end`: a newline keeps it and goes on below it, a carriage
    return goes back to its start. Back to the start with a carriage return, and blanks over what a longer line
    left: not the escape that erases a line (ESC [K), which Windows' console host (cmd, PowerShell 5) prints as
    text unless a program turns on its escapes."""
    global _drawn
    sys.stderr.write(f"\r{line}{' ' * (_drawn - len(line))}{end}")
    _drawn = 0 if end == "\n" else len(line)


def new_line():
    """Keep the line the last redraw left (a finished bar) and go on below it."""
    global _drawn
    sys.stderr.write("\n")
    _drawn = 0


def _columns():
    """The terminal's width: $COLUMNS, else that of stderr's terminal, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, ValueError, OSError):  # no file descriptor (a test's stream), or not a terminal
        return 80


def _clock(seconds):
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


class Items:
    """Progress over a known number of items (e.g. images of a batch) with rate and time left.

    On a terminal, item messages are printed above a bar that is redrawn after each item, and also within one
    (`within`: large images take minutes); elsewhere each item's message is one line, prefixed with [i/n] if
    there is more than one item, so logs stay readable. `quiet`: nothing but the always_show messages (errors).
    """

    def __init__(self, total, label, quiet=False):
        self.total, self.label, self.done, self.quiet = total, label, 0, quiet
        self.start = time.perf_counter()
        self.interactive = not quiet and sys.stderr.isatty()

    def within(self, fraction, stage):
        """Redraw the bar part-way through the current item: `fraction` of it done, now at `stage`."""
        if self.interactive:
            self._draw(self.done + fraction, stage)

    def item_done(self, message, always_show=False):
        """Count one item; `message` is shown on its own line in logs, on a terminal if always_show or if it
        is the only item (its bar then makes way for the message)."""
        self.done += 1
        if self.quiet and not always_show:
            return
        if not self.interactive:
            self._line(message if self.total == 1 else f"[{self.done}/{self.total}] {message}")
            return
        if always_show or self.total == 1:
            self._line(message)
        if self.total > 1:
            self._draw(self.done, None)
            if self.done == self.total:
                new_line()

    def note(self, message):
        """Show `message` (a warning) on its own line, above the bar on a terminal; nothing when quiet."""
        if not self.quiet:
            self._line(message)  # the bar is redrawn below it as the item is done

    def _line(self, message):
        """`message` on a line of its own; on a terminal in place of the bar, which the next draw puts back."""
        if self.interactive:
            _redraw(message, "\n")
        else:
            sys.stderr.write(f"{message}\n")

    def clear(self):
        """Erase the bar (on a terminal), e.g. to make way for an error message."""
        if self.interactive:
            _redraw("", "\r")

    def _draw(self, done, stage):
        """The bar at `done` items (a float within an item), with the stage, time per item and time left."""
        elapsed = time.perf_counter() - self.start
        text = [f"{self.done}/{self.total}"] if self.total > 1 else []
        text += [stage] if stage else []
        text += [f"{elapsed / self.done:.1f} s each"] if self.done else []
        text += [f"{_clock(elapsed / done * (self.total - done))} left"] if 0 < done < self.total else []
        bar(self.label, done / self.total, ", ".join(text))
