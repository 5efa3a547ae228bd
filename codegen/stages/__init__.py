"""The ML stages: dataset packing and download, training, quantization, the accuracy report, reference scores
from tf.lite, and the user-model front door (MODEL=). TensorFlow is imported inside the functions only."""
