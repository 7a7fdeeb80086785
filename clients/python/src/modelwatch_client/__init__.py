"""Send a model server's predictions to modelwatch's collector.

    from modelwatch_client import Watch

    watch = Watch("http://127.0.0.1:8080", "fraud-fastapi")
    watch.observe(score=0.03, features={"amount": 42.0}, stages={"inference": 0.0012})
    ...
    watch.close()            # sends what is still buffered

`observe()` only appends to a bounded in-memory buffer; a background daemon thread
validates, batches and POSTs the events to `/v1/models/{model}/observations`. Nothing
the client does ever blocks or raises into the model server: what it cannot deliver
is counted in `Watch.stats()`.
"""

from __future__ import annotations

from ._watch import Stats, Watch

__all__ = ["Stats", "Watch"]
__version__ = "0.1.0"
