// Copy buttons of the VietQR checkout (issue 5).
