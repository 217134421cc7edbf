"""What the solver shows while it trains: a one-line progress bar on a terminal, and numbers
printed as Caffe's C++ streams print them."""
import math
import time


class ProgressBar:
    """A one-line progress bar on a terminal's stderr (iteration, loss, speed, time left)."""

    WIDTH = 30

    def __init__(self, stream, start, stop):
        self.stream, self.start, self.stop = stream, start, stop
        self.t0 = self.last = time.monotonic()
        self.shown = False

    def update(self, iteration, loss, force=False):
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        span = max(self.stop - self.start, 1)
        done = min(max(iteration - self.start, 0), span)
        fill = int(self.WIDTH * done / span)
        speed = done / (now - self.t0) if now > self.t0 else 0.0
        left = (span - done) / speed if speed > 0 else None
        if left is None or not math.isfinite(left):
            eta = '--:--:--'
        else:
            minutes, seconds = divmod(int(left), 60)
            eta = f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
        self.stream.write(f"\r\x1b[Kiter {iteration}/{self.stop} [{'#' * fill}"
                          f"{'.' * (self.WIDTH - fill)}] loss {loss:.6g}  {speed:.2f} it/s  "
                          f"eta {eta}")
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.stream.write('\r\x1b[K')
            self.stream.flush()
            self.shown = False


def caffe_number(value):
    """A number as C++'s ostream prints it (6 significant digits)."""
    return f"{float(value):.6g}"


def isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
