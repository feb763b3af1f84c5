"""Pre-registration (issue 23 item 5): canonical hashing, tamper refusal, hash-derived replicate seeds, and counting
earlier evaluations of a test split in a real MLflow sqlite store."""

from __future__ import annotations

import hashlib
import json

import pytest
from mlflow.tracking import MlflowClient

from mdaug.data.manifest import Manifest, Row
from mdaug.evaluation import preregistration as prereg
from mdaug.evaluation.arms import plan_runs
from mdaug.evaluation.config import EvalConfig
from mdaug.evaluation.stats import ALPHA
from mdaug.ray_mlflow.eval_job import EVAL_TAG

HASH_A, HASH_B = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()


def _manifest(test_shas: list[str], reverse: bool = False, prefix: str = "") -> Manifest:
    rows = [Row(f"{prefix}tr{p}.png", p, p, f"train{p}", "train") for p in (0, 1)]
    rows += [Row(f"{prefix}va{p}.png", p, p, f"val{p}", "val") for p in (0, 1)]
    rows += [Row(f"{prefix}te{i}.png", i % 2, i % 2, sha, "test") for i, sha in enumerate(test_shas)]
    return Manifest("root", "rgb", {0: 0, 1: 1}, 0, 0.2, 0.2, None, rows[::-1] if reverse else rows)


def test_test_split_hash_is_the_test_images_not_their_order_paths_or_other_splits():
    base = prereg.test_split_hash(_manifest(["x", "y", "z"]))
    assert prereg.test_split_hash(_manifest(["z", "y", "x"], reverse=True, prefix="moved/")) == base
    other_train = _manifest(["x", "y", "z"])
    other_train.rows[0] = Row("tr0.png", 0, 0, "another train image", "train")
    assert prereg.test_split_hash(other_train) == base
    assert prereg.test_split_hash(_manifest(["x", "y", "w"])) != base


def test_hash_is_canonical_whatever_the_key_order(tmp_path):
    doc = {"alpha": 0.05, "ks": (5, 10), "primary": {"arm": "real+synthetic@1", "comparator": "real"}}
    shuffled = {"primary": {"comparator": "real", "arm": "real+synthetic@1"}, "ks": [5, 10], "alpha": 0.05}
    path_a, hash_a = prereg.write_preregistration(doc, tmp_path / "a")
    path_b, hash_b = prereg.write_preregistration(shuffled, tmp_path / "b")
    assert hash_a == hash_b == hashlib.sha256(path_a.read_bytes()).hexdigest()
    assert path_a.read_bytes() == path_b.read_bytes()
    assert b" " not in path_a.read_bytes() and b"\n" not in path_a.read_bytes()
    assert (tmp_path / "a" / prereg.HASH).read_text() == f"{hash_a}  {prereg.DOC}\n"  # sha256sum -c format
    _, changed = prereg.write_preregistration(doc | {"alpha": 0.01}, tmp_path / "c")
    assert changed != hash_a
    with pytest.raises(ValueError, match="alpha"):
        prereg.canonical_json({"alpha": float("nan")})


def test_preregistration_records_the_commitments_and_survives_verification(tmp_path):
    cfg = EvalConfig(ks=(10, 5), seeds=3, ratios=(1.0, 2.0), arms=("real", "real+synthetic", "A/A"))
    plan = plan_runs(cfg, False)
    extra = {"generators": {"10": {"folder": "gen/k10", "dit_sha256": HASH_B}}, "replicates": 2,
             "classifier_seeds": [[1, 2, 3], [4, 5, 6]]}
    doc = prereg.preregistration(cfg, plan, HASH_A, extra, manifest_hash=HASH_B)
    assert doc["primary"] == {"arm": "real+synthetic@1", "comparator": "real", "reference_ratio": 1.0}
    assert doc["holm_family_k"] == ["10", "5"]
    assert doc["arms"] == ["real", "real+synthetic@1", "real+synthetic@2", "A/A"]
    assert len(doc["plan"]) == len(plan) and {"arm", "k", "seed", "ratio"} <= set(doc["plan"][0])
    assert "base" not in doc["plan"][0]  # derives from the hash: not part of what it hashes
    assert doc["plan"] == prereg.preregistration(cfg, plan_runs(cfg, False), HASH_A, extra,
                                                 manifest_hash=HASH_B)["plan"]
    assert doc["step_policy"]["max_steps"] == cfg.max_steps and doc["alpha"] == ALPHA
    assert doc["replicate_design"]["classifier_seeds"] == [[1, 2, 3], [4, 5, 6]]
    assert doc["test_split_hash"] == HASH_A and doc["manifest_hash"] == HASH_B
    assert doc["code_version"] not in ("", "unknown")
    _, digest = prereg.write_preregistration(doc, tmp_path)
    read = prereg.verify_preregistration(tmp_path, expected=digest)
    assert read == json.loads(prereg.canonical_json(doc))
    with pytest.raises(ValueError, match="sha256 hex digest"):
        prereg.preregistration(cfg, plan, "not-a-hash", extra, manifest_hash=HASH_B)


def test_a_changed_preregistration_is_refused(tmp_path):
    _, digest = prereg.write_preregistration({"format": prereg.FORMAT, "alpha": 0.05, "seeds": 8}, tmp_path)
    path = tmp_path / prereg.DOC
    path.write_text(path.read_text().replace('"seeds":8', '"seeds":9'))
    with pytest.raises(ValueError, match=f"{prereg.DOC} was changed after it was written"):
        prereg.verify_preregistration(tmp_path)
    _, other = prereg.write_preregistration({"format": prereg.FORMAT, "alpha": 0.05, "seeds": 9}, tmp_path)
    assert prereg.verify_preregistration(tmp_path)["seeds"] == 9  # consistent again, but not what MLflow holds:
    with pytest.raises(ValueError, match="the expected hash"):
        prereg.verify_preregistration(tmp_path, expected=digest)
    (tmp_path / prereg.HASH).unlink()
    with pytest.raises(FileNotFoundError, match=prereg.HASH):
        prereg.verify_preregistration(tmp_path)


def test_replicate_seeds_are_stable_distinct_and_new_for_every_n():
    assert prereg.replicate_seeds(HASH_A, 8) == prereg.replicate_seeds(HASH_A, 8)
    every: set[int] = set()
    for n in range(1, 41):
        seeds, more = prereg.replicate_seeds(HASH_A, n), prereg.replicate_seeds(HASH_A, n + 1)
        assert len(set(seeds)) == n and all(0 <= s < 2**31 for s in seeds)
        assert all(a != b for a, b in zip(seeds, more, strict=False)) and not set(seeds) & set(more)
        every |= set(seeds)
    assert len(every) == 40 * 41 // 2  # no n shares a seed with any other
    assert not set(prereg.replicate_seeds(HASH_A, 8)) & set(prereg.replicate_seeds(HASH_B, 8))
    assert max(prereg.replicate_seeds(HASH_A, 64)) > 2**24  # spread over the range, not 0 … n
    with pytest.raises(ValueError, match="n=0"):
        prereg.replicate_seeds(HASH_A, 0)


def test_count_looks_counts_finished_evaluations_of_this_test_split(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    exp, other_exp = client.create_experiment("eval"), client.create_experiment("other")

    def run(exp_id: str, split_hash: str, kind: str = EVAL_TAG, finish: bool = True) -> str:
        r = client.create_run(exp_id, tags={"kind": kind, "test_split_hash": split_hash})
        if finish:
            client.set_terminated(r.info.run_id, "FINISHED")
        return r.info.run_id

    assert prereg.count_looks(client, [exp], HASH_A) == 0
    first = run(exp, HASH_A)
    run(exp, HASH_A)
    run(exp, HASH_B)
    run(exp, HASH_A, finish=False)
    run(exp, HASH_A, kind="evaluation-run")
    assert prereg.count_looks(client, [exp], HASH_A) == 2
    assert prereg.count_looks(client, [exp], HASH_B) == 1
    client.delete_run(first)  # deleting a look does not undo it
    assert prereg.count_looks(client, [exp], HASH_A) == 2
    run(other_exp, HASH_A)
    assert prereg.count_looks(client, [exp], HASH_A) == 2
    assert prereg.count_looks(client, None, HASH_A) == 3  # None: every experiment of the store
    with pytest.raises(ValueError, match="sha256 hex digest"):
        prereg.count_looks(client, [exp], "x' or tags.kind = 'evaluation")


def test_look_label_words():
    assert prereg.look_label(0) == "confirmatory: first look at this test split"
    assert prereg.look_label(1) == ("exploratory, look #2 at this test split (1 earlier evaluation(s) of it in "
                                    "MLflow)")
    assert prereg.look_label(4).startswith("exploratory, look #5 ")
    with pytest.raises(ValueError, match="n_previous=-1"):
        prereg.look_label(-1)
