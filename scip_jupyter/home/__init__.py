"""The person's home page on the hub and the hub pages we template (English and French).

`hub.configure_home` is a `hub_setup.FEATURES` entry: both hubs get it from one wiring.
"""
