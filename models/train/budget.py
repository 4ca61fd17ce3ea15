"""The training budget both trainers honour: `--minutes` is the budget, and the learning-rate
schedule runs over it (warm-up, then a cosine decay to 5%), so training ends annealed when the
time is spent; `--max-steps`, when given, is a cap that may come first. The log and the card say
which of the two stopped training."""
import math
import time


class Budget:
    def __init__(self, minutes, max_steps=None, warmup=200):
        self.seconds = minutes * 60
        self.max_steps = max_steps
        self.warmup = min(warmup, max_steps // 10 + 1) if max_steps else warmup
        self.start = None

    def begin(self):
        self.start = time.time()

    def elapsed(self):
        return 0.0 if self.start is None else time.time() - self.start

    def progress(self, step):
        """How far through the budget (0..1): by time, or by steps when that cap comes first."""
        p = self.elapsed() / self.seconds
        if self.max_steps:
            p = max(p, step / self.max_steps)
        return min(1.0, p)

    def lr_factor(self, step):
        return min(1.0, (step + 1) / self.warmup) * max(0.05, 0.5 * (1 + math.cos(math.pi * self.progress(step))))

    def more(self, step):
        return (not self.max_steps or step < self.max_steps) and self.elapsed() < self.seconds

    def stopped_by(self, step):
        return "max-steps cap" if self.max_steps and step >= self.max_steps else "time budget"
