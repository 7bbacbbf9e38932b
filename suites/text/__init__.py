"""Language-model claims: WikiText-2 data, AWD-LSTM and QRNN with their regularizers, synthetic twins."""
