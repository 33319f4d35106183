"""ui/sweep"""
