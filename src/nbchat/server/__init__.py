"""The nbchat Jupyter server extension: PeerJS-compatible signaling and presence per room."""
