"""Ad clicks: ad impressions scored for the chance of a click, against visitor and creative features."""
