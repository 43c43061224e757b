"""Domain logic: no HTTP framework and no SQL in here (storage is reached through ``mailhooks.db.Store``)."""
