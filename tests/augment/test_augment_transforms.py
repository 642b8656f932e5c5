"""SyntheticLesionTransform on 2.5D slabs and 3D volumes; config factory; real-tumor handling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from liverseg.augment import (
    LesionParams,
    SyntheticLesionTransform,
    from_config,
    has_real_tumor,
    make_transform,
)
from liverseg.errors import ConfigError, GeometryError

SPACING = (2.5, 0.8, 0.8)


def _slab(case_factory, **kw):
    image, label = case_factory(**kw)
    c = image.shape[0] // 2
    return image[c - 2 : c + 3].copy(), label[c - 2 : c + 3].copy()


def test_slab_with_full_labels_gets_one_3d_lesion_across_slices(case_factory):
    image, label = _slab(case_factory)
    assert image.shape[0] == 5
    t = SyntheticLesionTransform(
        LesionParams(count=(1, 1), diameter_mm=(14.0, 14.0), merge_probability=0.0), p=1.0
    )
    before_image, before_label = image.copy(), label.copy()
    out_image, out_label = t(image, label, SPACING, np.random.default_rng(0))
    assert np.array_equal(image, before_image) and np.array_equal(label, before_label)  # inputs untouched
    assert out_image.shape == image.shape and out_label.shape == label.shape
    lesion = (out_label == 2) & (label != 2)
    # a 14 mm lesion spans several 2.5 mm slices and is one 3D component
    assert lesion.any(axis=(1, 2)).sum() >= 3
    assert ndimage.label(lesion, structure=np.ones((3, 3, 3)))[1] == 1
    changed = out_image != image
    assert not (changed & (label == 0)).any()
    # deterministic per generator state
    again = t(image, label, SPACING, np.random.default_rng(0))
    assert np.array_equal(again[0], out_image) and np.array_equal(again[1], out_label)


def test_slab_lesions_may_run_across_the_slab_border(case_factory):
    image, label = _slab(case_factory)
    t = SyntheticLesionTransform(LesionParams(count=(1, 1), diameter_mm=(30.0, 30.0), merge_probability=0.0))
    _, out_label = t(image, label, SPACING, 3)
    lesion = out_label == 2
    # a 30 mm lesion is taller than the 12.5 mm slab: it is cut by the slab, not rejected
    assert lesion.any(axis=(1, 2)).all()


def test_centre_slice_label_is_accepted_and_returned_2d(case_factory):
    image, label = _slab(case_factory)
    t = make_transform(count=[2, 2], diameter_mm=[6, 12])
    out_image, out_label = t(image, label[2], SPACING, np.random.default_rng(1))
    assert out_label.shape == label[2].shape
    assert not ((out_image != image) & (label == 0)).any()
    assert not ((out_label == 2) & (label[2] == 0)).any()
    with pytest.raises(GeometryError, match="2D label"):
        t(image, label[2, :-1], SPACING, 0)


def test_probability_and_no_liver(case_factory):
    image, label = _slab(case_factory)
    never = SyntheticLesionTransform(LesionParams(), p=0.0)
    out_image, out_label = never(image, label, SPACING, 0)
    assert np.array_equal(out_image, image) and np.array_equal(out_label, label)
    always = SyntheticLesionTransform(LesionParams(count=(2, 2)), p=1.0)
    empty = np.zeros_like(label)
    out_image, out_label = always(image, empty, SPACING, 0)
    assert np.array_equal(out_image, image) and not out_label.any()


def test_3d_volume_input(case_factory):
    image, label = case_factory()
    out_image, out_label = make_transform(count=[3, 3])(image, label, SPACING, 4)
    assert out_image.shape == image.shape
    assert ((out_label == 2) & (label == 1)).any()
    assert not ((out_image != image) & (label == 0)).any()


def test_replace_real_tumors_relabels_them_and_avoids_them(case_factory):
    image, label = case_factory(tumor_radius_mm=6.0)
    real = label == 2
    assert has_real_tumor(label) and not has_real_tumor(label == 5)
    t = make_transform(count=[2, 2], diameter_mm=[6, 10], replace_real_tumors=True)
    out_image, out_label = t(image, label, SPACING, 0)
    assert (out_label[real] == 1).all()
    assert ((out_label == 2) & ~real).any()
    assert np.array_equal(out_image[real], image[real])
    # also when no lesion is drawn
    skip = SyntheticLesionTransform(LesionParams(), p=0.0, replace_real_tumors=True)
    assert not has_real_tumor(skip(image, label, SPACING, 0)[1])


def test_from_config_builds_and_rejects_unknown_keys():
    t = from_config({"p": 0.3, "params": {"count": [1, 2], "replace_real_tumors": True}})
    assert t.p == 0.3 and t.params.count == (1, 2) and t.replace_real_tumors
    assert from_config(None).p == 0.5
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['probability'\]"):
        from_config({"probability": 0.5})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['sizes'\]"):
        from_config({"p": 0.5, "params": {"sizes": [1, 2]}})
    with pytest.raises(ConfigError, match="probability"):
        from_config({"p": 1.5})
    with pytest.raises(ConfigError, match=r"\['colour'\]"):
        make_transform(colour="red")


def test_training_hook_finds_the_transform(case_factory):
    """liverseg.training.augmentation builds the transform with liverseg.augment.make_transform(**params)."""
    from liverseg.training import augmentation

    fn = augmentation.lesion_transform({"count": [1, 1], "diameter_mm": [8, 8]})
    image, label = _slab(case_factory)
    out_image, out_label = fn(image, label[2], SPACING, np.random.default_rng(0))
    assert out_image.shape == image.shape and out_label.shape == label[2].shape
    assert not np.array_equal(out_image, image)
