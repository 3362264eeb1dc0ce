"""Collaborative filtering through the ``implicit`` library: ALS, BPR and item-item kNN.

Why these three: they answer "customers like you also bought" from purchase co-occurrence alone,
with different trade-offs — ALS (confidence-weighted matrix factorisation) is the strong default on
repeat-purchase data, BPR optimises the ranking directly, and item kNN is transparent (every score
is a sum of item–item similarities) and gives ``similar`` items for product pages.

Why wrap implicit rather than call it directly: implicit works on positions; the rest of the
engine works on string ids, time-decayed histories, fold-in of live events and erasure.  Each
generator therefore keeps its own ``IdMap`` of customers and of the *whole catalogue* (unsold
items are known but cold: never recommended, never an unknown-id error), the customer × item
history CSR ``user_items_`` (implicit needs it to filter bought items and to fold customers in),
and persists everything as arrays (``np.savez``), rebuilding the implicit object on load.

Fold-in (``partial_fit``) updates only the history rows of the customers in the new purchases and
recomputes just their vectors against the fixed item side (ALS: implicit's exact least-squares
``recalculate_user``; BPR: BPR's steepest-ascent direction, see ``BPR``; ItemKNN: nothing, scores
come straight from the history row), so the next ``recommend`` reflects a purchase without
retraining.  ``forget`` removes customers' rows and factors; the item
side (item factors, item similarities) still carries their aggregate contribution until the next
``fit`` — retrain on the erased data set to remove that too.
"""

from __future__ import annotations

from recsys.models._implicit_base import Similarity, Weighting
from recsys.models.als import ALS
from recsys.models.bpr import BPR
from recsys.models.item_knn import ItemKNN

__all__ = ["ALS", "BPR", "ItemKNN", "Similarity", "Weighting"]
