"""The test model zoo (TorchRec's ``torchrec.distributed.test_utils.test_model``): small sparse + dense models that
sharding tests shard and compare with their unsharded twin, and ``ModelInput``, the batch they eat.

``TestSparseNN`` is the workhorse: an EBC (+ a weighted EBC) over ``ModelInput.idlist_features`` /
``idscore_features``, a linear dense arch over ``float_features``, an over arch over both, and in training mode
``(loss, pred)`` (BCE-with-logits of ``pred`` against ``label``), else ``pred``, both ``(B,)``.

Example::

    glob, local = ModelInput.generate(batch_size=4, world_size=2, num_float_features=10,
                                      tables=tables, weighted_tables=weighted_tables)
    model = TestSparseNN(tables=tables, weighted_tables=weighted_tables)
    loss, pred = model(glob)  # the sharded twin fed local[rank] gives pred[rank * 4:(rank + 1) * 4]
"""

from recsys_lib.distributed.test_utils._model_input import ModelInput
from recsys_lib.distributed.test_utils._zoo_archs import (
    DENSE_LAYER_OUT_SIZE,
    OVER_ARCH_OUT_SIZE,
    TestDenseArch,
    TestDHNArch,
    TestEBCSparseArch,
    TestECSparseArch,
    TestOverArch,
    TestOverArchLarge,
    TestOverArchRegroupModule,
    TestSparseNNBase,
)
from recsys_lib.distributed.test_utils._zoo_mixed import (
    TestEBCSparseArchZCH,
    TestMixedEmbeddingSparseArch,
    TestMixedSequenceOverArch,
    TestMixedSequenceOverArchLargeActivation,
)
from recsys_lib.distributed.test_utils._zoo_models import (
    TestSparseNN,
    TestTowerCollectionSparseNN,
    TestTowerInteraction,
    TestTowerSparseNN,
)
from recsys_lib.distributed.test_utils._zoo_preproc import (
    TestModelWithPreproc,
    TestModelWithPreprocCollectionArgs,
    TestNegSamplingModule,
    TestPositionWeightedPreprocModule,
    TestPreprocNonWeighted,
    TestPreprocWeighted,
)

__all__ = [
    "DENSE_LAYER_OUT_SIZE", "OVER_ARCH_OUT_SIZE", "ModelInput", "TestDenseArch", "TestDHNArch", "TestOverArch",
    "TestOverArchRegroupModule", "TestOverArchLarge", "TestECSparseArch", "TestEBCSparseArch", "TestSparseNNBase",
    "TestSparseNN", "TestTowerInteraction", "TestTowerSparseNN", "TestTowerCollectionSparseNN",
    "TestPreprocNonWeighted", "TestPreprocWeighted", "TestModelWithPreproc", "TestModelWithPreprocCollectionArgs",
    "TestNegSamplingModule", "TestPositionWeightedPreprocModule", "TestEBCSparseArchZCH", "TestMixedSequenceOverArch",
    "TestMixedSequenceOverArchLargeActivation", "TestMixedEmbeddingSparseArch",
]
