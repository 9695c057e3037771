"""A photo becomes a face the engines can use, or a clear reason why not."""

import numpy as np
import pytest

from avatar.errors import UserFacingError
from avatar.faces import read_face
from avatar.framing import Framing
from tests.helpers import ASTRONAUT, COFFEE, GRACE_HOPPER, photo
from tests.trials import photos


@pytest.mark.parametrize("path", [ASTRONAUT, GRACE_HOPPER], ids=["astronaut", "grace_hopper"])
def test_a_portrait_gives_a_square_crop_with_level_eyes_and_the_mouth_below_centre(path):
    face = read_face(photo(path), crop_size=512)
    assert face.crop.shape == (512, 512, 3)
    assert face.landmarks.shape == (478, 2)
    left_eye, right_eye = face.landmarks[[33, 133]].mean(0), face.landmarks[[362, 263]].mean(0)
    assert abs(left_eye[1] - right_eye[1]) < 3
    mouth = face.landmarks[[13, 14]].mean(0)
    assert 256 < mouth[1] < 420 and abs(mouth[0] - 256) < 30


def test_the_crop_maps_back_onto_the_original_photo(astronaut_face):
    original = astronaut_face.photo
    affine = astronaut_face.crop_to_photo
    crop_point = astronaut_face.landmarks[1]
    x, y = affine @ np.array([crop_point[0], crop_point[1], 1.0])
    assert np.allclose((x, y), astronaut_face.detected.landmarks[1], atol=0.5)
    patch_crop = astronaut_face.crop[250:262, 250:262].astype(float).mean()
    cx, cy = (affine @ np.array([256.0, 256.0, 1.0])).round().astype(int)
    patch_photo = original[cy - 4 : cy + 4, cx - 4 : cx + 4].astype(float).mean()
    assert abs(patch_crop - patch_photo) < 20


def test_a_photo_without_a_face_is_refused_with_a_clear_message():
    with pytest.raises(UserFacingError, match="No face was found"):
        read_face(photo(COFFEE))


def test_a_photo_with_two_faces_is_refused_with_a_clear_message():
    single = photo(ASTRONAUT)
    pair = np.concatenate([single, single], axis=1)
    with pytest.raises(UserFacingError, match="2 faces"):
        read_face(pair)


def test_a_face_too_small_is_refused_with_a_clear_message():
    small = photo(ASTRONAUT)[::3, ::3]
    with pytest.raises(UserFacingError, match="only about 30 pixels wide"):
        read_face(small, min_face_pixels=64)


def test_a_small_face_that_shows_only_on_a_second_look_is_refused_for_its_size_not_as_missing():
    with pytest.raises(UserFacingError, match=r"only about 4\d pixels wide"):
        read_face(photos.framed_copy(ASTRONAUT, face_width=44))


def test_a_photo_on_its_side_is_refused_with_a_request_to_rotate_it():
    with pytest.raises(UserFacingError, match="rotate the photo upright"):
        read_face(photos.on_its_side())


def test_a_small_face_runs_with_a_note_that_the_close_up_will_look_softer():
    small = photos.framed_copy(GRACE_HOPPER, face_width=72)
    assert any("softer" in note for note in read_face(small, framing=Framing.CLOSE_UP).notes)
    assert read_face(photo(GRACE_HOPPER), framing=Framing.CLOSE_UP).notes == ()


def test_a_small_face_in_the_whole_photo_looks_as_sharp_as_its_photo_so_nothing_is_noted():
    assert read_face(photos.framed_copy(GRACE_HOPPER, face_width=72)).notes == ()
