"""Geofencing (短信围栏): base-station fences over streaming location events, and the
right offer while the subscriber is still there (docs/geofence.md).

* :mod:`~jingxin.geofence.types` - a fence, an event batch, triggers, the source contract;
* :mod:`~jingxin.geofence.fences` - fences in YAML, resolved to cells (a list, or a centre
  and radius over the cell table); :mod:`~jingxin.geofence.registry` keeps them in the
  store; :mod:`~jingxin.geofence.mapimage` draws one (PNG);
* :mod:`~jingxin.geofence.directory`, :mod:`~jingxin.geofence.compiled`,
  :mod:`~jingxin.geofence.state`, :mod:`~jingxin.geofence.matcher` - the vectorised
  matcher and its compact, checkpointed per-subscriber state;
* :mod:`~jingxin.geofence.sources`, :mod:`~jingxin.geofence.streams` - file replay, an
  in-process queue, Redis Streams sharded by number with consumer groups;
* :mod:`~jingxin.geofence.audience` (segment and resident bitmaps),
  :mod:`~jingxin.geofence.offers` (triggers to the delivery entry),
  :mod:`~jingxin.geofence.roaming` (arrivals abroad / in another province, welcomed by
  the journeys' roaming pack), :mod:`~jingxin.geofence.runner` (the loop).
"""
