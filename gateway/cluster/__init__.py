"""Cluster membership and the gateway's side of the storage-node protocol."""
