"""Experimental models (TorchRec's ``torchrec.models.experimental``)."""
