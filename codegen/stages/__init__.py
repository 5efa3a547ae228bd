"""The ML stages: dataset packing and download, training, quantization, the accuracy report, reference scores
from tf.lite, the summary. What they share with the emitters and runners (images, quantization, the user's model
file, tf.lite) is in codegen.modelio, below them. TensorFlow is imported inside the functions only."""
