"""ui/playground"""
