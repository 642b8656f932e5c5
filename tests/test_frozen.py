"""liverseg.frozen: the pydantic base of typed configs and records, and its one-line errors."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import ValidationError

from liverseg.errors import ConfigError
from liverseg.frozen import Described, Float, FrozenModel, Int, field_annotation, type_name
from liverseg.training.config import AugmentConfig, CascadeConfig, TrainConfig


class _Inner(FrozenModel):
    size: Int = 8
    pair: tuple[Float, Float] = (0.0, 1.0)


class _Outer(FrozenModel):
    name: str = "x"
    inner: _Inner = _Inner()


def test_nested_errors_carry_the_dotted_path_also_when_constructed_directly() -> None:
    # nested models are validated by pydantic-core, not through FrozenModel.__init__: the error
    # names the full path (it would say only 'p_flip' if the nested __init__ ran)
    with pytest.raises(ConfigError, match=r"^augment\.p_flip: expected a probability in \[0, 1\], got 2\.0$"):
        TrainConfig(augment={"p_flip": 2})
    with pytest.raises(
        ConfigError, match=r"^inner\.pair: expected list \[float, float\], got \[1, 'a'\] \(list\)$"
    ):
        _Outer(inner={"pair": [1, "a"]})
    with pytest.raises(ConfigError, match=r"^unknown key 'inner\.sise' \(valid keys of inner: size, pair\)$"):
        _Outer.from_dict({"inner": {"sise": 3}})


def test_strict_scalars_lax_containers() -> None:
    m = _Inner.from_dict({"size": 3, "pair": [1, 2]})
    assert m.pair == (1.0, 2.0) and isinstance(m.pair[0], float) and m.pair.__class__ is tuple
    for bad in ({"size": 3.0}, {"size": "3"}, {"size": True}, {"pair": [True, 1.0]}, {"pair": ["1", 2]}):
        with pytest.raises(ConfigError, match=r"^(size|pair): expected "):
            _Inner.from_dict(bad)


def test_frozen_positional_replace_and_round_trip() -> None:
    m = _Inner(4, (0.5, 2))
    assert m == _Inner(size=4, pair=(0.5, 2.0))
    with pytest.raises(ValidationError, match="frozen"):
        m.size = 5  # type: ignore[misc]
    with pytest.raises(TypeError, match="at most 2"):
        _Inner(1, (0, 1), 3)
    with pytest.raises(TypeError, match="both by position and by name"):
        _Inner(1, size=2)
    assert m.replace(size=9).size == 9 and m.size == 4
    with pytest.raises(ConfigError, match=r"^size: expected int, got 'big' \(str\)$"):
        m.replace(size="big")
    assert m.to_dict() == {"size": 4, "pair": [0.5, 2.0]} and _Inner.from_dict(m.to_dict()) == m
    c = CascadeConfig(TrainConfig(name="a"), TrainConfig(name="b"))
    assert c.stage1.name == "a" and c.stage2.name == "b"


def test_non_mapping_input_and_type_names() -> None:
    with pytest.raises(ConfigError, match=r"^config: expected a mapping of settings, got \[1, 2\] \(list\)$"):
        TrainConfig.from_dict([1, 2])
    assert type_name(Annotated[tuple[Float, Float], Described("a (low, high) pair")]) == "a (low, high) pair"
    assert (
        type_name(field_annotation(TrainConfig, "stage.spacing_zyx")) == "list [float | null, float, float]"
    )
    assert type_name(field_annotation(TrainConfig, "stage.window")) == "list [float, float] | str"
    assert type_name(field_annotation(TrainConfig, "augment")) == "mapping (section)"
    with pytest.raises(
        ConfigError, match=r"unknown key 'augment\.p_nope' \(valid keys of augment: enabled, "
    ):
        field_annotation(TrainConfig, "augment.p_nope")
    assert AugmentConfig.model_config["frozen"] and AugmentConfig.model_config["extra"] == "forbid"
