"""Training of learned codecs: patch sampling (:mod:`.data`) and the generic trainer (:mod:`.codec`).

Importing this package does not import torch.
"""
