"""The topic contract: records, codec, topic names, keys, identity. Depends on nothing of ours."""
