"""Error types, all in one place. Every error clearconv raises on bad input subclasses
ValueError (through :class:`ClearConvError`)."""


class ClearConvError(ValueError):
    """Base class: bad input to clearconv (a shape, a channel count, a hyper-parameter)."""


class ShapeError(ClearConvError):
    """Input shapes or channel counts that do not fit together."""


class ModelFileError(ClearConvError):
    """A model file that is corrupt, truncated, foreign or unsafe to load."""


class NumericalError(ClearConvError, FloatingPointError):
    """A NaN or Inf appeared in a loss or gradient during training."""


class GradcheckError(ClearConvError):
    """An analytic gradient disagrees with its finite-difference estimate."""


class DatasetError(ClearConvError):
    """A dataset file that is missing, corrupt, truncated, foreign or unsafe to read."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files of a dataset are not where they were looked for.

    Also a :class:`FileNotFoundError`, so ``except FileNotFoundError`` catches it.
    """


class ImageFileError(ClearConvError):
    """An image file that cannot be read: not an image, corrupt or truncated, or with more
    pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb limit)."""


class DistributedError(ClearConvError):
    """The processes of a data-parallel run disagree (another model, other data) or a
    check failed on some of them; raised on every rank alike."""
