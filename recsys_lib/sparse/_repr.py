"""String forms of the jagged types (``str(jt)``, ``str(kjt)``, ``str(kt)``; eager only, TorchRec's layout)::

    KeyedJaggedTensor({
        "f1": [[1, 2], [], [3]],
        "f2": {
            "values": [[4], [5], [6, 7]],
            "weights": [[1.0], [1.0], [0.5, 0.5]]
        }
    })
"""

from typing import List

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


def jt_str(jt: JaggedTensor) -> str:
    values = [t.tolist() for t in jt.to_dense()]
    dense_w = jt.to_dense_weights()
    if dense_w is None:
        return "JaggedTensor({\n    " + str(values) + "\n})\n"
    weights = [t.tolist() for t in dense_w]
    return 'JaggedTensor({\n    "values": ' + str(values) + ',\n    "weights": ' + str(weights) + "\n})\n"


def kjt_str(kjt: KeyedJaggedTensor) -> str:
    if len(kjt.keys()) == 0:
        return "KeyedJaggedTensor()\n"
    lines: List[str] = []
    for k, jt in kjt.to_dict().items():
        values = [t.tolist() for t in jt.to_dense()]
        dense_w = jt.to_dense_weights()
        if dense_w is None:
            lines.append(f'    "{k}": {values}')
        else:
            weights = [t.tolist() for t in dense_w]
            lines.append(f'    "{k}": {{\n        "values": {values},\n        "weights": {weights}\n    }}')
    return "KeyedJaggedTensor({\n" + ",\n".join(lines) + "\n})\n"


def kt_str(kt: KeyedTensor) -> str:
    if len(kt.keys()) == 0:
        return "KeyedTensor()\n"
    body = ",\n".join(f'    "{k}": {v.tolist()}' for k, v in kt.to_dict().items())
    return "KeyedTensor({\n" + body + "\n})\n"
