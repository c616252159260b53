"""The Arduino sketch (``firmware/rover_bridge``): build and flash it (:mod:`.build`), run it on
an emulated Uno (:mod:`.emulator`, simavr) and measure it there (:mod:`.bench`)."""
