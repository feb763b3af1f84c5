"""The evaluation's data in Ray's object store set by set: each image set is put once, and a run's task receives
the real sets and only the added set its arm draws from (a task on another node pulls no other generated set)."""

from __future__ import annotations

from dataclasses import dataclass

import ray

from mdaug.evaluation.arms import RunSpec, added_key
from mdaug.evaluation.sets import AddedKey, EvalData


@dataclass
class PlacedEvalData:
    real: ray.ObjectRef  # EvalData.real_only(): manifest, train, val, test, the generated sets' manifests
    added: dict[AddedKey, ray.ObjectRef]  # 'oracle' or (k, replicate) → its image set (a shared folder: one object)

    @classmethod
    def put(cls, data: EvalData) -> PlacedEvalData:
        sets = data.added_sets()
        once: dict[int, ray.ObjectRef] = {}
        for s in sets.values():
            if id(s) not in once:
                once[id(s)] = ray.put(s)
        return cls(ray.put(data.real_only()), {key: once[id(s)] for key, s in sets.items()})

    def args(self, spec: RunSpec) -> tuple[ray.ObjectRef, AddedKey, ray.ObjectRef | None]:
        """A run task's first arguments (Ray resolves the references; the task calls real.with_added(key, set)):
        the real data, the key of the added set the run draws from, that set."""
        key = added_key(spec)
        return self.real, key, self.added.get(key)

