"""The versioned store in process: one tag sequence with observed versions, retired versions
kept, the experiment's counts, corrections, recomputed routing, the eval gate on a bandit
promotion, hand edits, and a store folder that is a pure function of the log."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.evals.manifest import load_manifest
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import (
    EvalCaseResult,
    EvalRunCompleted,
    GraderResult,
    PolicySet,
    SkillExecutionRecorded,
    SkillPromoted,
    SkillRetired,
    SkillRouted,
)
from skillopsd.projections import engine_for
from skillopsd.versions._bandit import decide_state
from skillopsd.versions.materialize import MANIFEST, materialize, store_root
from skillopsd.versions.observed import Observed, VersionRecorder
from skillopsd.versions.policy import bandit_policy
from skillopsd.versions.store import (
    StoreError,
    add_challenger,
    import_skill,
    read_state,
    record_manual,
    rollback,
    set_strategy,
)
from skillopsd.versions.sync import sync_skill, verify_routing

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def text(body: str) -> str:
    return f"---\nname: tidy\ndescription: test\n---\n\n{body}\n"


def folder(root: Path, name: str, body: str, evals: str | None = None) -> Path:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "SKILL.md").write_text(text(body))
    if evals is not None:
        (directory / "evals.yaml").write_text(evals)
    return directory


def sync(db: Database, skill: str = "tidy") -> None:
    engine_for(db).catch_up()
    sync_skill(db, skill, now=NOW, settle=0)
    engine_for(db).catch_up()


def challenger_file(root: Path, body: str) -> Path:
    path = root / f"challenger-{abs(hash(body))}.md"
    path.write_text(text(body))
    return path


def policy(db: Database, **values: int | float) -> None:
    EventLog(db).append([NewEvent("policy:bandit", PolicySet(name="bandit", values=dict(values)))])


def test_one_tag_sequence_with_observed_versions_and_retired_versions_keep_theirs(
    db: Database, tmp_path: Path
) -> None:
    recorder = VersionRecorder(db)
    recorder.note(Observed("2026-01-01", "claude:s1", 0, "tidy", "a" * 64, "observed body", None))
    recorder.record()
    live = folder(tmp_path, "tidy", "one")
    state = import_skill(db, "tidy", live, [], "me")
    assert [v.tag for v in state.by_tag()] == [1, 2]  # max+1 after the observed v1
    v3 = add_challenger(db, "tidy", challenger_file(tmp_path, "three"), "machine", 40)
    assert v3.tag == 3 and v3.author == "machine" and v3.confidence == 40
    EventLog(db).append(
        [NewEvent("skill:tidy", SkillRetired(skill="tidy", version_hash=v3.content_hash))]
    )
    v4 = add_challenger(db, "tidy", challenger_file(tmp_path, "four"), "human", None)
    assert v4.tag == 4
    sync(db)
    state = read_state(db, "tidy")
    assert state.versions[v3.content_hash].retired and state.challenger == v4.content_hash
    store = store_root(db.path) / "tidy"
    assert {p.name for p in store.iterdir()} == {
        MANIFEST,
        "SKILL.v1.md",
        "SKILL.v2.md",
        "SKILL.v3.md",
        "SKILL.v4.md",
    }
    # An observed body (shown without frontmatter) borrows the newest file's frontmatter.
    assert (store / "SKILL.v1.md").read_text().startswith("---\nname: tidy\n")
    assert (store / "SKILL.v1.md").read_text().endswith("\n\nobserved body\n")
    assert (store / "SKILL.v3.md").read_text() == text("three")


def test_the_champion_counts_only_from_the_experiment_start(db: Database, tmp_path: Path) -> None:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    for n in range(5):
        record_manual(db, "tidy", "v1", "success", None, None, f"before-{n}")
    add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    record_manual(db, "tidy", "v1", "failure", 10, None, "after-1")
    state = read_state(db, "tidy")
    assert state.experiment is not None and state.champion is not None
    in_test = state.stats(state.champion, state.experiment)
    assert (in_test.executions, in_test.successes, in_test.tokens_reported) == (1, 0, 1)
    assert state.stats(state.champion, None).executions == 6


def test_a_correction_replaces_the_record_and_a_repeat_is_ignored(
    db: Database, tmp_path: Path
) -> None:
    state = import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    v1 = state.champion
    assert v1 is not None
    log = EventLog(db)

    def record(outcome: str, source: str, supersedes: str | None, event_id: str) -> None:
        event = SkillExecutionRecorded(
            skill="tidy",
            version_hash=v1,
            session_id="claude:s1",
            outcome=outcome,  # type: ignore[arg-type]
            source=source,
            execution_id="session:claude:s1",
            supersedes=supersedes,
        )
        log.append([NewEvent("skill:tidy", event, event_id)])

    record("success", "verdict", None, "first")
    record("failure", "label", "first", "second")
    record("success", "verdict", None, "stray")  # names nothing it corrects: not counted
    state = read_state(db, "tidy")
    stats = state.stats(v1, None)
    assert (stats.executions, stats.successes) == (1, 0)
    assert state.executions["session:claude:s1"].source == "label"


def test_verify_routing_recomputes_and_catches_a_forged_decision(
    db: Database, tmp_path: Path
) -> None:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    for n in range(6):
        record_manual(db, "tidy", "v2" if n % 2 else "v1", "success", None, None, f"r{n}")
        sync(db)
    found = verify_routing(db, "tidy")
    checked, mismatches = found.routings, found.mismatches
    assert checked >= 6 and mismatches == []
    state = read_state(db, "tidy")
    assert state.routing is not None and state.challenger is not None
    newest = next(
        e.payload
        for e in reversed(list(EventLog(db).read_stream("skill:tidy")))
        if e.type == "SkillRouted"
    )
    assert isinstance(newest, SkillRouted)
    other = state.challenger if newest.chosen_hash == state.champion else state.champion
    assert other is not None
    forged = SkillRouted(
        skill="tidy",
        routing_id=newest.routing_id,
        algorithm=newest.algorithm,
        seed=newest.seed,
        chosen_hash=other,
        params=newest.params,
        draws=newest.draws,
        probability=newest.probability,
        arms=newest.arms,
        scores=newest.scores,
        experiment_id=newest.experiment_id,
        after_version=newest.after_version,
    )
    EventLog(db).append([NewEvent("skill:tidy", forged)])
    again = verify_routing(db, "tidy")
    assert again.routings == checked + 1 and len(again.mismatches) == 1


def test_verify_recomputes_promotions_and_the_policy_in_force(db: Database, tmp_path: Path) -> None:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    for n in range(4):
        record_manual(db, "tidy", "v2", "failure", None, None, f"f{n}")
        sync(db)
    assert verify_routing(db, "tidy").mismatches == []
    state = read_state(db, "tidy")
    assert state.challenger is not None
    # A forged bandit promotion of a 0/4 challenger does not recompute.
    forged = SkillPromoted(
        skill="tidy", version_hash=state.challenger, previous_hash=state.champion, author="bandit"
    )
    EventLog(db).append([NewEvent("skill:tidy", forged)])
    found = verify_routing(db, "tidy")
    assert found.decisions == 1 and len(found.mismatches) == 1
    assert "the rule says continue" in found.mismatches[0].problem
    # A person's promotion that neither passed the gate nor was forced is named too.
    sneaky = SkillPromoted(skill="tidy", version_hash=state.champion or "", author="mallory")
    EventLog(db).append([NewEvent("skill:tidy", sneaky)])
    assert len(verify_routing(db, "tidy").mismatches) == 2


def test_verify_checks_a_routing_against_the_policy_in_force(db: Database, tmp_path: Path) -> None:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    sync(db)
    assert verify_routing(db, "tidy").mismatches == []
    # The cap changes after the routing: the routing stays right under the policy of its time.
    EventLog(db).append(
        [NewEvent("policy:bandit", PolicySet(name="bandit", values={"challenger_cap": 0.2}))]
    )
    assert verify_routing(db, "tidy").mismatches == []
    newest = next(
        e.payload
        for e in reversed(list(EventLog(db).read_stream("skill:tidy")))
        if e.type == "SkillRouted"
    )
    assert isinstance(newest, SkillRouted)
    # A routing recorded now with the old cap contradicts the policy in force.
    stale = msgspec.structs.replace(newest)
    EventLog(db).append([NewEvent("skill:tidy", stale)])
    problems = [m.problem for m in verify_routing(db, "tidy").mismatches]
    assert any("challenger_cap 0.5 recorded, the policy in force says 0.2" in p for p in problems)


EVALS = """\
version: 1
suites:
  - name: tidy
    cases:
      - name: runs-tests
        graders:
          - {type: outcome, expect: success}
"""


def test_a_bandit_promotion_needs_the_gate_when_the_skill_has_evals(
    db: Database, tmp_path: Path
) -> None:
    live = folder(tmp_path, "tidy", "one", EVALS)
    import_skill(db, "tidy", live, [], "me")
    policy(db, min_per_arm=2, promote_bar=0.6)
    v2 = add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    suite_hash = load_manifest(live / "evals.yaml").suite_hash
    failed = EvalRunCompleted(
        run_id="run-1",
        skill="tidy",
        version_hash=v2.content_hash,
        suite_hash=suite_hash,
        deriver_version=4,
        sessions=["claude:s9"],
        passed=False,
        cases=[
            EvalCaseResult(
                suite="tidy",
                case="runs-tests",
                graded=1,
                passed_sessions=0,
                passed=False,
                results=[
                    GraderResult(session_id="claude:s9", index=0, type="outcome", passed=False)
                ],
            )
        ],
        suites=["tidy"],
        all_suites=["tidy"],
    )
    EventLog(db).append([NewEvent("eval:run-1", failed)])
    for n in range(4):
        record_manual(db, "tidy", "v2", "success", None, None, f"c{n}")
        record_manual(db, "tidy", "v1", "failure", None, None, f"k{n}")
        sync(db)
    state = read_state(db, "tidy")
    assert state.champion != v2.content_hash and state.challenger == v2.content_hash
    gates = [e.payload for e in EventLog(db).read_stream("skill:tidy") if e.type == "GateEvaluated"]
    assert len(gates) == 1 and not gates[0].cleared  # type: ignore[attr-defined]
    assert "failed" in gates[0].reason  # type: ignore[attr-defined]


def test_without_evals_the_rule_promotes_and_retires(db: Database, tmp_path: Path) -> None:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    policy(db, min_per_arm=3, promote_bar=0.9, retire_bar=0.9)
    v2 = add_challenger(db, "tidy", challenger_file(tmp_path, "two"), "human", None)
    for n in range(3):
        record_manual(db, "tidy", "v2", "success", None, None, f"c{n}")
        record_manual(db, "tidy", "v1", "failure", None, None, f"k{n}")
    sync(db)
    assert read_state(db, "tidy").champion == v2.content_hash
    v3 = add_challenger(db, "tidy", challenger_file(tmp_path, "three"), "machine", 10)
    for n in range(3):
        record_manual(db, "tidy", "v3", "failure", None, None, f"d{n}")
        record_manual(db, "tidy", "v2", "success", None, None, f"e{n}")
    sync(db)
    state = read_state(db, "tidy")
    assert state.champion == v2.content_hash and state.versions[v3.content_hash].retired
    assert state.challenger is None


def test_a_hand_edit_of_a_live_file_is_imported_and_never_overwritten(
    db: Database, tmp_path: Path
) -> None:
    live = folder(tmp_path, "tidy", "one")
    other = tmp_path / "project" / "tidy"
    other.parent.mkdir()  # the project's skills folder exists; tidy in it is created
    import_skill(db, "tidy", live, [other], "me")
    sync(db)
    assert (other / "SKILL.md").read_text() == text("one")
    (live / "SKILL.md").write_text(text("edited by hand"))
    sync(db)  # moments old: not taken yet (an editor may still be writing it)
    assert len(read_state(db, "tidy").versions) == 1
    still = (live / "SKILL.md").stat().st_mtime - 5
    os.utime(live / "SKILL.md", (still, still))
    sync(db)
    state = read_state(db, "tidy")
    edited = state.by_tag()[-1]
    assert edited.source == "edited" and state.champion == edited.content_hash
    assert (live / "SKILL.md").read_text() == text("edited by hand")
    assert (other / "SKILL.md").read_text() == text("edited by hand")


def test_unmanaged_and_unknown(db: Database, tmp_path: Path) -> None:
    recorder = VersionRecorder(db)
    recorder.note(Observed("2026-01-01", "claude:s1", 0, "legacy", "b" * 64, "legacy body", None))
    recorder.record()
    assert [v.tag for v in read_state(db, "legacy").by_tag()] == [1]
    with pytest.raises(StoreError) as unmanaged:
        sync(db, "legacy")
    assert unmanaged.value.code == 1
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    with pytest.raises(StoreError) as unknown:
        rollback(db, "tidy", "v9", "me")
    assert unknown.value.code == 1
    with pytest.raises(StoreError) as bad:
        set_strategy(db, "tidy", "coin-flip", "me")
    assert bad.value.code == 2
    with pytest.raises(StoreError) as missing:
        add_challenger(db, "tidy", tmp_path / "nope.md", "human", None)
    assert missing.value.code == 2 and "nope.md" in str(missing.value)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.sampled_from(["v1", "v2", "v3"]), st.booleans()),
        st.tuples(st.just("challenger"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("rollback"), st.sampled_from(["v1", "v2"]), st.booleans()),
        st.tuples(st.just("strategy"), st.sampled_from(["thompson", "ucb1", "champion-only"])),
        st.tuples(
            st.just("sync"),
        ),
    ),
    max_size=25,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_the_store_folder_is_a_function_of_the_log(ops: list[tuple[object, ...]]) -> None:
    """Whatever happened, deleting the folder and materializing again gives the same bytes,
    a tampered manifest is rewritten, and every routing recomputes."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = Database.open(root / "db" / "skillops.db", create_dirs=True)
        try:
            policy(db, min_per_arm=2, promote_bar=0.8, retire_bar=0.8, horizon=12)
            import_skill(db, "tidy", folder(root, "tidy", "one"), [], "me")
            sync(db)
            for n, op in enumerate(ops):
                try:
                    if op[0] == "record":
                        outcome = "success" if op[2] else "failure"
                        record_manual(db, "tidy", str(op[1]), outcome, n, None, f"r{n}")
                    elif op[0] == "challenger":
                        add_challenger(
                            db, "tidy", challenger_file(root, f"body {op[1]}"), "machine", n
                        )
                    elif op[0] == "rollback":
                        rollback(db, "tidy", str(op[1]), "me")
                    elif op[0] == "strategy":
                        set_strategy(db, "tidy", str(op[1]), "me")
                    sync(db)
                except StoreError:
                    continue  # refused (unknown version, challenger running): nothing stored
            store = store_root(db.path)
            before = {p.name: p.read_bytes() for p in sorted((store / "tidy").iterdir())}
            (store / "tidy" / MANIFEST).write_text("{}")
            materialize(store, read_state(db, "tidy"))
            assert (store / "tidy" / MANIFEST).read_bytes() == before[MANIFEST]
            shutil.rmtree(store)
            materialize(store, read_state(db, "tidy"))
            assert {p.name: p.read_bytes() for p in sorted((store / "tidy").iterdir())} == before
            assert verify_routing(db, "tidy").mismatches == []
            state = read_state(db, "tidy")
            tags = sorted(v.tag for v in state.versions.values())
            assert tags == list(range(1, len(tags) + 1))
        finally:
            db.close()


def test_a_re_test_of_the_same_body_is_held_to_a_stricter_bar(db: Database, tmp_path: Path) -> None:
    import_skill(db, "tidy", folder(tmp_path, "tidy", "one"), [], "me")
    body = challenger_file(tmp_path, "two")
    policy(db, min_per_arm=3, horizon=6)
    bars = []
    for test in range(3):
        add_challenger(db, "tidy", body, "human", None)
        state = read_state(db, "tidy")
        decision = decide_state(state, bandit_policy(db))
        assert decision is not None
        bars.append(decision.statistic["promote_bar"])
        for n in range(3):  # an equal challenger: the test ends inconclusive at its horizon
            record_manual(db, "tidy", "v2", "success", None, None, f"c{test}-{n}")
            record_manual(db, "tidy", "v1", "success", None, None, f"k{test}-{n}")
            sync(db)
        assert read_state(db, "tidy").challenger is None
    assert bars == [0.998, 0.999, 0.9995]
