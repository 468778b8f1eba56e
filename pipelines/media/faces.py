"""Face crops per 0.1 s frame for raw mode, with the Haar cascade that OpenCV ships.

For every frame of the 0.1 s grid (`decode.VideoGrid`), the video frame shown at that time is
searched for frontal faces with `haarcascade_frontalface_default.xml` from `cv2.data.haarcascades`
(no download), on a grayscale copy downscaled to `DETECT_HEIGHT` rows and histogram-equalised:

* a full search (faces from 1/8 of the picture height up, scale step 1.1) on the first frame,
  whenever no face was found on the frame before, and every `FULL_SEARCH_EVERY` frames (1 s); it
  takes the largest face;
* in between, the face is looked for near where it was (a region 2x the face's size, faces of
  0.8-1.25x its size, the region scaled so that the face is `TRACK_SIZE` pixels): about a tenth of
  the cost of a full search. If it is not found there, the frame gets a full search.

The face is cut out of the full-resolution RGB frame as a square around the detection box,
enlarged by `MARGIN` of the box on every side (parts outside the picture are black) and resized to
`face_size` x `face_size` (`cv2.INTER_AREA`).

A frame where no face is found is absent: presence 0 and an all-zero crop, never a copy of a
neighbouring crop.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipelines.core.errors import DataError
from pipelines.media.decode import VideoGrid

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_HEIGHT = 240  # rows of the grayscale image the cascade searches
MIN_FACE_FRACTION = 1 / 8  # smallest face searched for, as a fraction of the detection image's height
SCALE_FACTOR = 1.1
MIN_NEIGHBOURS = 5
MARGIN = 0.2
FULL_SEARCH_EVERY = 10  # grid frames between full searches while a face is tracked
TRACK_SIZE = 36  # pixels a tracked face is scaled to for the local search
TRACK_REGION = 0.5  # the local search region extends this fraction of the face size on every side
TRACK_SCALE_FACTOR = 1.05
TRACK_MIN_NEIGHBOURS = 4
# Pixel formats whose first plane is the luma (grayscale) picture at full size.
_LUMA_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}


@dataclasses.dataclass
class FaceTrack:
    """Face crops on the 0.1 s grid.

    Attributes:
        faces: uint8 [N, size, size, 3] (RGB); zeros where no face was found.
        present: uint8 [N], 1 where a face was found.
        duration: float. Seconds of video.
        fps: float or None. The video's frame rate.
        decoded_frames: int. Video frames decoded.
    """

    faces: np.ndarray
    present: np.ndarray
    duration: float
    fps: object
    decoded_frames: int


class FaceDetector:
    """The largest frontal face of an RGB frame, as a square crop of `face_size` pixels."""

    def __init__(self, face_size: int):
        import cv2

        self.cv2 = cv2
        self.face_size = int(face_size)
        path = cv2.data.haarcascades + CASCADE
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DataError("OpenCV cannot load its Haar cascade (reinstall opencv-python-headless)", path)
        self.box = None  # the face found on the previous frame (detection coordinates)
        self.since_full = 0  # frames since the last full search

    def detect(self, gray: np.ndarray):
        """(x, y, w, h) of the largest face in a grayscale image (a full search), or None."""
        cv2 = self.cv2
        equalised = cv2.equalizeHist(gray)
        smallest = max(int(gray.shape[0] * MIN_FACE_FRACTION), 20)
        boxes = self.cascade.detectMultiScale(
            equalised, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBOURS, minSize=(smallest, smallest)
        )
        return _largest(boxes)

    def track(self, gray: np.ndarray, box):
        """(x, y, w, h) of a face of about `box`'s size near `box`, or None."""
        cv2 = self.cv2
        x, y, w, h = box
        size = max(w, h)
        reach = TRACK_REGION * size
        x0, y0 = int(max(x - reach, 0)), int(max(y - reach, 0))
        x1, y1 = int(min(x + w + reach, gray.shape[1])), int(min(y + h + reach, gray.shape[0]))
        if x1 - x0 < 0.8 * size or y1 - y0 < 0.8 * size:
            return None
        scale = TRACK_SIZE / size
        region = cv2.resize(gray[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        low, high = int(0.8 * TRACK_SIZE), int(1.25 * TRACK_SIZE) + 1
        if min(region.shape) < max(low, 24):
            return None
        boxes = self.cascade.detectMultiScale(
            cv2.equalizeHist(region),
            scaleFactor=TRACK_SCALE_FACTOR,
            minNeighbors=TRACK_MIN_NEIGHBOURS,
            minSize=(max(low, 24), max(low, 24)),
            maxSize=(high, high),
        )
        found = _largest(boxes)
        if found is None:
            return None
        bx, by, bw, bh = found
        return (bx / scale + x0, by / scale + y0, bw / scale, bh / scale)

    def crop(self, rgb: np.ndarray, box, scale: float) -> np.ndarray:
        """The square crop around `box` (detection coordinates, `scale` = full / detection size)."""
        cv2 = self.cv2
        x, y, w, h = (v * scale for v in box)
        side = max(w, h) * (1.0 + 2.0 * MARGIN)
        cx, cy = x + w / 2.0, y + h / 2.0
        x0, y0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
        s = max(int(round(side)), 1)
        height, width = rgb.shape[:2]
        patch = np.zeros((s, s, 3), np.uint8)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + s, width), min(y0 + s, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        return cv2.resize(patch, (self.face_size, self.face_size), interpolation=cv2.INTER_AREA)

    def gray(self, video_frame, small_w: int, small_h: int) -> np.ndarray:
        """The frame as grayscale at the detection size: the luma plane of a YUV frame, resized with
        `cv2.INTER_AREA` (no colour conversion), else FFmpeg's conversion."""
        cv2 = self.cv2
        if video_frame.format.name in _LUMA_FORMATS:
            plane = video_frame.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(video_frame.height, plane.line_size)[:, : video_frame.width]
            if (small_w, small_h) == (video_frame.width, video_frame.height):
                return np.ascontiguousarray(luma)
            return cv2.resize(luma, (small_w, small_h), interpolation=cv2.INTER_AREA)
        gray = video_frame.reformat(width=small_w, height=small_h, format="gray").to_ndarray()
        return np.ascontiguousarray(gray[:small_h, :small_w])

    def frame(self, video_frame):
        """The crop of the largest face of a PyAV video frame, or None. Frames are expected in order
        (the face found on one frame is looked for near the same place on the next)."""
        height, width = video_frame.height, video_frame.width
        scale = max(height / DETECT_HEIGHT, 1.0)
        small_w, small_h = max(int(round(width / scale)), 1), max(int(round(height / scale)), 1)
        gray = self.gray(video_frame, small_w, small_h)
        box = None
        if self.box is not None and self.since_full < FULL_SEARCH_EVERY:
            box = self.track(gray, self.box)
            self.since_full += 1
        if box is None:
            box = self.detect(gray)
            self.since_full = 0
        self.box = box
        if box is None:
            return None
        rgb = video_frame.to_ndarray(format="rgb24")
        return self.crop(rgb, box, width / small_w)


def _largest(boxes):
    if len(boxes) == 0:
        return None
    return tuple(float(v) for v in max(boxes, key=lambda box: int(box[2]) * int(box[3])))


def extract_faces(path, face_size: int, hop: float = 0.1, on_frame=None) -> FaceTrack:
    """Face crops of the video stream of `path`, one per `hop` seconds.

    `on_frame(k)`, if given, is called after each grid frame (progress).
    """
    detector = FaceDetector(face_size)
    grid = VideoGrid(path, hop)
    crops, flags = [], []
    empty = np.zeros((face_size, face_size, 3), np.uint8)
    for item in grid:
        crop = detector.frame(item.frame)
        crops.append(empty if crop is None else crop)
        flags.append(0 if crop is None else 1)
        if on_frame is not None:
            on_frame(item.index)
    faces = np.stack(crops) if crops else np.zeros((0, face_size, face_size, 3), np.uint8)
    return FaceTrack(
        faces=faces,
        present=np.asarray(flags, np.uint8),
        duration=grid.duration,
        fps=grid.fps,
        decoded_frames=grid.decoded_frames,
    )
