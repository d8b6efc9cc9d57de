"""Pop: most-popular ranking, with RecBole 1.2.1's counting fixed.

RecBole's Pop adds 1 to ``item_cnt[items]`` with a plain indexed assignment, which counts an item once per
training batch however often it appears in that batch; its popularity (and every Pop result) then depends on
``train_batch_size``. It also counts sampled negatives as interactions. This subclass counts every positive
interaction once (``properties/model/Pop.yaml`` also turns negative sampling off), in a multi-process run those
of every process; the rest is RecBole's.
Being a model of this package, it shadows RecBole's Pop in :func:`recbole_galrec.lookup.get_model`.
"""

import torch
import torch.distributed as dist
from recbole.model.general_recommender.pop import Pop as RecBolePop


class Pop(RecBolePop):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]
        self.single_process = config["single_spec"]

    def calculate_loss(self, interaction):
        items = interaction[self.ITEM_ID]  # [B], repeats allowed
        positive = interaction[self.LABEL].long() if self.LABEL in interaction else torch.ones_like(items)
        counts = torch.zeros_like(self.item_cnt).index_add_(0, items, positive[:, None])  # [n_items, 1]
        if not self.single_process:
            dist.all_reduce(counts)  # each process sees its shard of the batches: count them all
        self.item_cnt += counts
        self.max_cnt = torch.max(self.item_cnt, dim=0)[0]
        return torch.nn.Parameter(torch.zeros(1)).to(self.device)
