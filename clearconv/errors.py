"""Error types. Every error clearconv raises on bad input subclasses ValueError."""


class ClearConvError(ValueError):
    """Base class: bad input to clearconv (a shape, a channel count, a hyper-parameter)."""


class ShapeError(ClearConvError):
    """Input shapes or channel counts that do not fit together."""


class ModelFileError(ClearConvError):
    """A model file that is corrupt, truncated, foreign or unsafe to load."""


class NumericalError(ClearConvError, FloatingPointError):
    """A NaN or Inf appeared in a loss or gradient during training."""
