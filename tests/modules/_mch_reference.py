"""A plain-Python managed-collision hash, written from the policy definitions, to check the tensor version.

Table: ``Z`` slots, each ``[raw_id, row, count, last_access]``; empty slots hold ``EMPTY``; the slot that sorts
last is the miss row and never leaves. Every ``interval`` training batches the ids seen since the last round are
counted; table ids add their counts / refresh their access; table and new ids (new ones by count desc, then id
asc) are ranked by the policy score, stable, table first; the best ``Z`` stay.
"""

EMPTY = 2**63 - 1


class ReferenceMCH:
    def __init__(self, zch_size, interval, policy="lfu", decay=1.0, offset=0):
        self.slots = [[EMPTY, offset + r, 0, 0] for r in range(zch_size)]
        self.z, self.interval, self.policy, self.decay = zch_size, interval, policy, decay
        self.it, self.last_round, self.history = 0, 0, []
        self.miss = offset + zch_size - 1
        self.evicted = set()

    def _score(self, count, last):
        dist = (self.it - last + 1) ** self.decay
        if self.policy == "lfu":
            return count
        if self.policy == "lru":
            return -dist
        return count / dist

    def _round(self):
        counts, last = {}, {}
        for it, ids in self.history:
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
                last[i] = it
        self.history = []
        table = sorted(self.slots, key=lambda s: s[0])  # stable: equal EMPTY ids keep their order
        index = {s[0]: s for s in table if s[0] != EMPTY}
        new = []
        for i in sorted(counts, key=lambda i: (-counts[i], i)):
            if i in index:
                index[i][2] += counts[i]
                index[i][3] = last[i]
            else:
                new.append((i, counts[i], last[i]))
        table[-1][2], table[-1][3] = 2**63 - 1, self.it  # pinned miss slot
        ranked = [(self._score(s[2], s[3]), k) for k, s in enumerate(table)]
        ranked += [(self._score(c, t), self.z + k) for k, (_, c, t) in enumerate(new)]
        order = [k for _, k in sorted(ranked, key=lambda x: -x[0])]  # Python's sort is stable
        out_table = [k for k in order[self.z:] if k < self.z]
        in_new = [k - self.z for k in order[: self.z] if k >= self.z]
        for slot_k, new_k in zip(out_table, in_new):
            slot = table[slot_k]
            self.evicted.add(slot[1])
            slot[0], slot[2], slot[3] = new[new_k]
        self.slots = table

    def forward(self, ids, training=True):
        if training:
            self.it += 1
            self.history.append((self.it, list(ids)))
            if self.it - self.last_round == self.interval:
                self._round()
                self.last_round = self.it
        rows = {s[0]: s[1] for s in self.slots if s[0] != EMPTY}
        return [rows.get(i, self.miss) for i in ids]

    def take_evicted(self):
        out, self.evicted = sorted(self.evicted), set()
        return out
