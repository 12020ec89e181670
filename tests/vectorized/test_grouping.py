"""The sweeper side: how a sweep's runs become vectorized jobs (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from initlab.vectorized.grouping import (
    JOB_DIR,
    VECTORIZE_KEY_OVERRIDE,
    decode_members,
    encode_members,
    group_jobs,
    is_member_key,
    override_key,
    quote,
)
from initlab.vectorized.sweeper import VectorizedSweeper
from initlab.vectorized.sweeper import expand as expand_overrides

CONF = Path(__file__).resolve().parents[2] / "conf"


def expand(*args: str) -> list[list[str]]:
    """The runs of a command line (the sweeper's expansion)."""
    return expand_overrides(OverridesParser.create().parse_overrides(list(args)))


def test_expansion_is_the_basic_sweepers() -> None:
    line = ["init=xavier,he", "init.std=1e3,0.01", "seed=range(0,3)", "activation=relu,tanh",
            "+foo='a b'", "model.channels=[8,16]", "~init.gain", "lr=choice(0.1,0.2)"]
    parsed = OverridesParser.create().parse_overrides(line)
    assert expand_overrides(parsed) == BasicSweeper.split_arguments(parsed, None)[0]


def test_override_keys_and_member_keys() -> None:
    assert override_key("+init.std=3") == "init.std"
    assert override_key("~init.gain") == "init.gain"
    assert override_key("init@x=he") == "init"
    assert is_member_key("init") and is_member_key("init.std") and is_member_key("seed")
    assert not is_member_key("initial") and not is_member_key("activation")
    assert not is_member_key("seeds")
    # the lr is a member key; the optimizer's other keys and the optimizer choice are not
    assert is_member_key("optimizer.lr")
    assert not is_member_key("optimizer") and not is_member_key("optimizer.momentum")


def test_an_lr_init_seed_sweep_is_one_job() -> None:
    runs = expand("optimizer.lr=0.1,0.01,0.001,0.0001", "init=xavier,he,lecun", "seed=0,1,2",
                  "optimizer=adamw")
    jobs = group_jobs(runs)
    assert len(runs) == 36 and len(jobs) == 1 and len(jobs[0].members) == 36
    assert jobs[0].shared == ["optimizer=adamw"]
    # narrowing the member keys puts each lr in its own job again
    assert len(group_jobs(runs, member_keys=["init", "seed"])) == 4


def test_runs_differing_in_init_and_seed_share_one_job() -> None:
    runs = expand("init=xavier,he", "seed=0,1", "activation=relu,tanh", "model.depth=2")
    jobs = group_jobs(runs)
    assert len(runs) == 8 and len(jobs) == 2  # activation makes the jobs
    for job in jobs:
        assert len(job.members) == 4
        assert "model.depth=2" in job.shared
        assert sum(o.startswith("activation=") for o in job.shared) == 1
        for num, own in job.members:
            # run numbers are the basic sweeper's job numbers of those runs
            assert sorted(runs[num]) == sorted([*job.shared, *own])
            assert {o.split("=")[0] for o in own} == {"init", "seed"}
    assert sorted(n for j in jobs for n, _ in j.members) == list(range(8))


def test_init_parameters_are_member_keys() -> None:
    jobs = group_jobs(expand("init=random", "init.std=1e3,0.01", "seed=0,1"))
    assert len(jobs) == 1 and len(jobs[0].members) == 4


def test_max_members_splits_a_group() -> None:
    jobs = group_jobs(expand("seed=range(0,10)"), max_members=4)
    assert [len(j.members) for j in jobs] == [4, 4, 2]
    with pytest.raises(ValueError, match="max_members"):
        group_jobs(expand("seed=0,1"), max_members=0)


def test_custom_member_keys_only_narrow_the_defaults() -> None:
    jobs = group_jobs(expand("init=xavier,he", "seed=0,1"), member_keys=["init"])
    assert len(jobs) == 2  # seeds now make separate jobs
    assert VectorizedSweeper(member_keys=["optimizer.lr"]).member_keys == ("optimizer.lr",)
    with pytest.raises(ValueError, match="member_keys.*'optimizer.momentum'.*optimizer.lr"):
        VectorizedSweeper(member_keys=["optimizer.momentum"])


@pytest.mark.parametrize("text", ["a\\b", "a\\", "it's", "a\\'b", "+x='a b'", "${y}", "[1,2]"])
def test_quote_round_trips_through_hydra(text: str) -> None:
    value = OverridesParser.create().parse_overrides([f"k={quote(text)}"])[0].value()
    assert value == text


def test_job_overrides_carry_the_members() -> None:
    job = group_jobs(expand("init=xavier,he", "seed=0", "+foo='a b'"))[0]
    overrides = job.overrides(3)
    assert f"hydra.sweep.subdir='{JOB_DIR}/3'" in overrides
    members_ov = next(o for o in overrides if o.startswith(VECTORIZE_KEY_OVERRIDE))
    parsed = OverridesParser.create().parse_overrides([members_ov])[0]
    assert decode_members(parsed.value()) == job.members
    assert encode_members([(0, ["seed=1"])]) == "[{num:0,overrides:['seed=1']}]"


def test_the_sweeper_is_a_discoverable_hydra_plugin() -> None:
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    found = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.initlab_vectorized.VectorizedSweeper" in found
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/sweeper=vectorized"],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.initlab_vectorized.VectorizedSweeper"
    assert list(cfg.hydra.sweeper.member_keys) == ["init", "seed", "optimizer.lr"]


def test_members_differing_in_seed_share_one_composition() -> None:
    from hydra import compose as hydra_compose

    from initlab.vectorized.run import MemberComposer

    ovs = ["model.depth=2", "+foo=1", "init=xavier"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composer = MemberComposer("config", ["hydra/sweeper=vectorized"])
        composer([*ovs, "seed=0"], 0)
        cfg, node, subdir = composer([*ovs, "seed=7"], 5)  # from the cached composition
        assert len(composer._cache) == 1
        full = hydra_compose("config", overrides=["hydra/sweeper=vectorized", *ovs, "seed=7"],
                             return_hydra_config=True)
    want = OmegaConf.to_container(full, resolve=False)
    want_node = want.pop("hydra")
    assert OmegaConf.to_container(cfg, resolve=False) == want and cfg.seed == 7
    assert list(node.overrides.task) == want_node["overrides"]["task"]
    assert node.job.override_dirname == want_node["job"]["override_dirname"]
    assert subdir == f"5_{want_node['job']['override_dirname']}"
    assert subdir == "5_+foo=1,init=xavier,model.depth=2,seed=7"


def test_a_members_overrides_come_back_in_the_runs_own_order() -> None:
    from initlab.vectorized.grouping import in_order

    runs = expand("model.depth=2", "init=xavier,he", "seed=0,1", "trainer.max_epochs=1")
    (job,) = group_jobs(runs)
    assert job.order == ["model.depth", "init", "seed", "trainer.max_epochs"]
    for num, own in job.members:
        assert in_order([*job.shared, *own], job.order) == runs[num]
    assert "++vectorize.order=['model.depth','init','seed','trainer.max_epochs']" in \
        job.overrides(0)


def test_handoff_gives_a_config_once_under_its_exact_key() -> None:
    from omegaconf import OmegaConf

    from initlab.vectorized import handoff

    cfg = OmegaConf.create({"seed": 1})
    key = handoff.handoff_key("config", ["hydra.sweep.dir=x", "hydra.verbose=a"],
                              ["init=he", "seed=1"])
    handoff.offer(key, cfg)
    try:
        # another task-override order is another job; hydra overrides in any order
        assert handoff.take(handoff.handoff_key("config", ["hydra.verbose=a",
                                                           "hydra.sweep.dir=x"],
                                                ["seed=1", "init=he"])) is None
        assert handoff.take(handoff.handoff_key("other", ["hydra.verbose=a",
                                                          "hydra.sweep.dir=x"],
                                                ["init=he", "seed=1"])) is None
        assert handoff.take(handoff.handoff_key("config", ["hydra.verbose=a",
                                                           "hydra.sweep.dir=x"],
                                                ["init=he", "seed=1"])) is cfg
        assert handoff.take(key) is None  # given out once
    finally:
        handoff.clear()


def test_member_keys_are_checked_by_name() -> None:
    from initlab.vectorized.grouping import DEFAULT_MEMBER_KEYS, checked_member_keys

    assert checked_member_keys(None) == DEFAULT_MEMBER_KEYS
    assert checked_member_keys(["init", "seed"]) == ("init", "seed")
    with pytest.raises(ValueError, match=r"member_keys: 'model.width' is not allowed.*"
                                         r"init, init\.\*, seed and optimizer\.lr"):
        checked_member_keys(["init", "model.width"])
