"""What genre-cnn runs on: Keras/TensorFlow set-up, process pools, quiet native libraries, atomic files."""
