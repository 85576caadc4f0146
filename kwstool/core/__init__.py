"""The floor every stage stands on: the feature contract read from the C front end, labels,
boards, audio I/O, the front end itself, and running TFLite models on the host."""
