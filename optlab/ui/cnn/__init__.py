"""ui/cnn"""
