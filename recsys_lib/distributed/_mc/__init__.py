"""Private pieces of the sharded managed-collision modules: pure layout math (``layout``), the raw-id exchange
(``id_exchange``), the sharded remap state (``state``) and the sharded MC-EC/EBC body (``embedding``)."""
