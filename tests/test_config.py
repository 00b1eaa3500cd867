"""key=value overrides of typed configs: applied, type-checked, and bad ones named."""

import re
from dataclasses import dataclass, field

import pytest

from dsrg.errors import InputError
from dsrg.overrides import apply_overrides
from dsrg.profile import load_profile


@dataclass
class Example:
    n_train: int = 10
    theta_fg: float = 0.85
    name: str = "demo"


def test_overrides_are_applied_with_their_types():
    cfg = apply_overrides(Example(), ["n_train=3", "theta_fg=inf", "name=voc"])
    assert cfg == Example(n_train=3, theta_fg=float("inf"), name="voc")
    assert apply_overrides(Example(), []) == Example()


@dataclass
class Section:
    theta_fg: float = 0.85
    theta_bg: float = 0.99


@dataclass
class Nested:
    seed: int = 0
    seg: Section = field(default_factory=Section)
    sizes: list[int] = field(default_factory=lambda: [241, 321])


def test_an_unknown_key_is_named_with_the_allowed_keys_and_the_closest():
    with pytest.raises(InputError, match=r"^config key 'n_trian': unknown key 'n_trian' "
                                         r"\(did you mean 'n_train'\?\); the keys are: n_train, theta_fg, name$"):
        apply_overrides(Example(), ["n_trian=3"])


def test_an_unknown_key_without_a_close_one_lists_the_keys_only():
    with pytest.raises(InputError, match=r"unknown key 'xyz'; the keys are: n_train, theta_fg, name$"):
        apply_overrides(Example(), ["xyz=3"])


def test_an_unknown_nested_key_names_its_section_and_the_section_keys():
    with pytest.raises(InputError, match=r"^config key 'seg.theta_fgg': unknown key 'theta_fgg' in seg "
                                         r"\(did you mean 'theta_fg'\?\); seg has: theta_fg, theta_bg$"):
        apply_overrides(Nested(), ["seg.theta_fgg=0.9"])
    with pytest.raises(InputError, match=r"unknown key 'segg' \(did you mean 'seg'\?\); "
                                         r"the keys are: seed, seg, sizes$"):
        apply_overrides(Nested(), ["segg.theta_fg=0.9"])


def test_a_key_of_a_section_given_without_it_or_in_capitals_is_pointed_to():
    with pytest.raises(InputError, match=r"unknown key 'theta_fg' \(did you mean 'seg.theta_fg'\?\); the keys"):
        apply_overrides(Nested(), ["theta_fg=0.9"])
    with pytest.raises(InputError, match=r"unknown key 'SEG' \(did you mean 'seg'\?\)"):
        apply_overrides(Nested(), ["SEG.theta_fg=0.9"])
    with pytest.raises(InputError, match=r"unknown key 'iterations' \(did you mean one of cls.iterations, "
                                         r"seg.iterations, retrain.iterations\?\)"):
        load_profile("smoke", ["iterations=9"])
    for key, meant in (("seed_loss", "seg.seed_loss"), ("sizes", "pseudo.sizes"), ("dataset", "data.dataset")):
        with pytest.raises(InputError, match=rf"unknown key '{key}' \(did you mean '{meant}'\?\)"):
            load_profile("smoke", [f"{key}=1"])     # a section's key, not the top's near miss (seeds, data)


def test_a_scalar_where_a_list_belongs_shows_the_list_form():
    with pytest.raises(InputError, match=r"^config key 'sizes': expected a list, e.g. sizes=\[64\]$"):
        apply_overrides(Nested(), ["sizes=64"])
    assert apply_overrides(Nested(), ["sizes=[64]"]).sizes == [64]


def test_a_value_that_is_not_yaml_is_named():
    with pytest.raises(InputError, match=r"^config key 'sizes': the value '\[64' is not valid YAML "
                                         r"\(.*\); a list is written \[a,b\]$"):
        apply_overrides(Nested(), ["sizes=[64"])


def test_a_value_of_the_wrong_type_is_named():
    with pytest.raises(InputError, match="'n_train': expected an integer, got 'many'"):
        apply_overrides(Example(), ["n_train=many"])


def test_an_override_without_equals_sign_is_rejected():
    with pytest.raises(InputError, match="expected key=value"):
        apply_overrides(Example(), ["n_train"])


def test_a_profile_typo_and_a_scalar_list_read_well_in_the_profile_message():
    from dsrg.profile import load_profile

    with pytest.raises(InputError, match=r"^seg.theta_fgg: unknown key 'theta_fgg' in seg "
                                         r"\(did you mean 'theta_fg'\?\); seg has: batch_size, .*theta_fg, theta_bg"):
        load_profile("demo", ["seg.theta_fgg=0.9"])
    with pytest.raises(InputError, match=r"^pseudo.sizes: expected a list, e.g. pseudo.sizes=\[64\] \(profile 'demo'; "
                                         r"every key and its value before the overrides: dsrg run --profile demo "
                                         r"--dry-run\)$"):
        load_profile("demo", ["pseudo.sizes=64"])


def test_a_value_out_of_range_and_one_of_a_wrong_type_read_alike():
    from dsrg.profile import load_profile

    hint = "(profile 'smoke'; every key and its value before the overrides: dsrg run --profile smoke --dry-run)"
    for override, said in [("seg.theta_fg=abc", "seg.theta_fg: expected a number, got 'abc'"),
                           ("seg.theta_fg=1.5", "seg.theta_fg: expected a probability in [0, 1], or .inf to turn "
                                                "that side off, got 1.5"),
                           ("device=tpu", "device: expected one of auto, cpu, cuda, got 'tpu'"),
                           ("seg.backbone_weights=w.pth", "seg.backbone_weights: expected no value with seg.init=cls "
                                                          "and retrain.init=seg (it would be ignored: train-seg starts "
                                                          "from the CAM net's trunk, retrain from train-seg's model); add "
                                                          "seg.init=imagenet to start train-seg from it, got 'w.pth'"),
                           ("cls.batch_norm=false", "seg.batch_norm: expected false (as cls.batch_norm) with "
                                                    "seg.init=cls, got true"),
                           ("seg.lr=null", "seg.lr: expected a number, got null (the value it replaces: 0.003)"),
                           ("name=null", "name: expected a value, got null (the value it replaces: smoke)"),
                           ("seg.growing=~", "seg.growing: expected true or false, got null (the value it replaces: true)"),
                           ("pseudo.sizes=null", "pseudo.sizes: expected a list, e.g. pseudo.sizes=[241,321,401], "
                                                 "got null"),
                           ("base=demo", "base: expected the folder that relative paths are written from, e.g. '..' "
                                         "from notebooks/, or '' for here (a profile does not inherit another: copy "
                                         "its file, or give overrides), got 'demo'")]:
        with pytest.raises(InputError) as exc:
            load_profile("smoke", [override])
        assert str(exc.value) == f"{said} {hint}"


def test_a_typing_slip_of_a_size_or_a_schedule_is_refused_before_it_runs_out_of_memory():
    """A crop of 10,000 px ran the machine out of memory; 10**22 iterations filled it with the batch schedule."""
    from dsrg.profile import load_profile

    for override, said in [("retrain.crop_size=10000", "retrain.crop_size: expected a crop side from 16 to 2048 px"),
                           ("seg.input_size=4000", "seg.input_size: expected an input side from 16 to 2048 px"),
                           ("pseudo.sizes=[321,4010]", "pseudo.sizes: expected a non-empty list of input sides from "
                                                       "16 to 2048 px"),
                           ("cls.iterations=99999999999999999999999",
                            "cls.iterations: expected an integer from 0 to 10,000,000")]:
        with pytest.raises(InputError, match="^" + re.escape(said)):
            load_profile("smoke", [override])
    assert load_profile("smoke", ["retrain.crop_size=2048", "cls.iterations=10000000"]).retrain.crop_size == 2048


def test_a_bad_value_of_the_embedded_sets_settings_names_data_synth():
    from dsrg.profile import load_profile
    from dsrg.run.preflight import check_inputs

    cfg = load_profile("smoke", ["data.synth=[n_train=abc]"])
    with pytest.raises(InputError, match=r"data.synth: n_train: expected an integer, got 'abc'"):
        check_inputs(cfg, ["cls"], remember=False)


def test_every_profile_field_says_what_it_is_beside_its_default():
    """One comment per config field (where a class first defines it; a subclass that only changes the
    default inherits it), as users read dsrg/profile.py to learn what they may override."""
    import ast
    import dataclasses
    import inspect

    from dsrg import profile

    source = inspect.getsource(profile)
    lines = source.splitlines()
    said: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            said[node.name] = {f.target.id for f in node.body if isinstance(f, ast.AnnAssign)
                               and "#" in lines[f.lineno - 1] + lines[f.end_lineno - 1]}

    def unsaid(cls, where):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory):                   # a section: its fields say
                yield from unsaid(f.default_factory, f"{where}{f.name}.")
            elif not any(f.name in said.get(c.__name__, ()) for c in cls.__mro__):
                yield f"{where}{f.name}"

    assert not list(unsaid(profile.Profile, ""))


def test_a_profile_that_is_not_there_is_named_as_a_file_or_as_a_name(tmp_path):
    from dsrg.profile import load_profile

    with pytest.raises(InputError, match=rf"^profile file {tmp_path / 'none.yaml'} not found: no such file; "
                                         r"expected the path of a YAML profile, or a bundled profile \(coco-vgg16, "):
        load_profile(str(tmp_path / "none.yaml"))
    with pytest.raises(InputError, match=r"^profile 'demoo' not found \(did you mean 'demo'\?\): expected a bundled "
                                         r"profile \(coco-vgg16, demo, "):
        load_profile("demoo")



def test_a_wrong_value_in_a_profile_file_is_quoted_from_the_file_even_beside_a_good_override(tmp_path):
    from dsrg.profile import load_profile

    (tmp_path / "p.yaml").write_text("seg:\n  iterations: many\n")
    with pytest.raises(InputError, match=r"^seg.iterations: expected an integer, got 'many'"):
        load_profile(str(tmp_path / "p.yaml"), ["seg.iterations=100"])


def test_a_key_set_more_than_once_is_noted_with_the_override_that_holds():
    from dsrg.overrides import given_twice

    assert given_twice(["seg.lr=1", "seg.lr=2", "seg.lr=3", "seed=1"]) == ["seg.lr given 3 times; the last, seg.lr=3, "
                                                                           "holds"]
    assert given_twice(["seed=1", "seed=2"]) == ["seed given twice; the last, seed=2, holds"]
    assert given_twice(["seed=1", "seg.lr=2", "seed=1", "seed"]) == [], "the same value again: nothing to note"
