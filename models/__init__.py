"""What each model is: targets, features used, LightGBM parameters, arbitration, reasons."""
