"""Console views: thin, each checking its permission and calling one service or selector."""
