"""Style transfer for video with temporal consistency (Ruder, Dosovitskiy & Brox, GCPR 2016).

    >>> import stylize
    >>> result = stylize.video("clip.mp4", "painting.jpg", "out.mp4", size=256)

The first frame is a normal coarse-to-fine transfer; each next frame starts from the previous
output warped by dense optical flow (OpenCV's DIS flow) and is pulled towards it by a temporal
loss (:mod:`stylize.loss.temporal`) wherever a forward-backward flow check says the flow is
reliable. Frames are streamed (one decoded frame in memory at a time), written as they finish,
and a rerun continues after the last finished one. Needs the ``video`` extra (PyAV and
opencv-python-headless); without it the first call says how to install it.

``stylize.video`` names both this package and, called, the :func:`video` function: once the
package is imported, Python binds the name ``stylize.video`` to it, so the package itself is
callable (its class is :class:`_CallablePackage`).
"""

import sys
import types
from typing import Any

from stylize.video.run import FrameProgress, VideoResult, video


class _CallablePackage(types.ModuleType):
    """A module that, called, runs :func:`stylize.video.video`."""

    def __call__(self, *args: Any, **kwargs: Any) -> VideoResult:
        return video(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["FrameProgress", "VideoResult", "video"]
