"""A model's inputs and outputs, below the stages, emitters and runners that all use them: image files to pixels
(images), quantizing inputs and the confidence of quantized scores (quantio), what a user's model file is and
takes (usermodel), TensorFlow and tf.lite's reference interpreter imported quietly (tf_env). TensorFlow, numpy
and Pillow are imported inside the functions only."""
