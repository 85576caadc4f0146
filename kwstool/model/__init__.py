"""The model stage: the model zoo, training, int8 quantization, evaluation."""
