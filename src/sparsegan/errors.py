"""The one exception type for user mistakes.

The CLI turns a :class:`UserError` into one line on stderr and a non-zero exit, never a traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: bad flag value, missing file, unknown name."""

    exit_code = 2


class DivergenceError(Exception):
    """Training produced non-finite losses or weights."""

    exit_code = 3


class TrainingStopped(Exception):
    """Training stopped on SIGINT / SIGTERM after saving a checkpoint (sparsegan.training.lifecycle)."""

    def __init__(self, signum: int, step: int, steps: int, checkpoint):
        import signal

        self.signum, self.step, self.steps, self.checkpoint = int(signum), step, steps, checkpoint
        self.exit_code = 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them
        super().__init__(f"stopped by {signal.Signals(self.signum).name} after step {step} of {steps}; "
                         f"checkpoint {checkpoint}")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C after a run began writing its folder but outside the loop's clean stop (a second Ctrl-C,
    or in the set-up that follows the folder's first file): ``sparsegan train`` then prints the command
    that resumes it. A plain KeyboardInterrupt out of ``sparsegan train`` came before anything was written.
    A KeyboardInterrupt still, so that code catching Ctrl-C catches it too."""
