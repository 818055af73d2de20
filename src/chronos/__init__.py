"""Chronos: stream LLM tokens, state-graph execution and both of them to browsers over SSE.

```python
from chronos import model, graph, stream
```
"""

from chronos import errors, graph, model, store, stream
from chronos.errors import ChronosError

__version__ = "0.1.0"

__all__ = ["ChronosError", "__version__", "errors", "graph", "model", "store", "stream"]
