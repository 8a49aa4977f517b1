"""The one time zone the utility, its banks and its wallets speak: GMT+7 all year (Vietnam has
no daylight saving), whatever the server's own TIME_ZONE."""

from zoneinfo import ZoneInfo

GMT7 = ZoneInfo("Asia/Ho_Chi_Minh")
