"""Style transfer for video with temporal consistency (Ruder, Dosovitskiy & Brox, GCPR 2016).

    >>> from stylize.video import video
    >>> result = video("clip.mp4", "painting.jpg", "out.mp4", size=256)

The first frame is a normal coarse-to-fine transfer; each next frame starts from the previous
output warped by dense optical flow (OpenCV's DIS flow) and is pulled towards it by a temporal
loss wherever a forward-backward flow check says the flow is reliable. Frames are streamed (one
decoded frame in memory at a time), written as they finish, and a rerun continues after the last
finished one. Needs the ``video`` extra (PyAV and opencv-python-headless).
"""

from stylize.video.run import FrameProgress, VideoResult, video

__all__ = ["FrameProgress", "VideoResult", "video"]
