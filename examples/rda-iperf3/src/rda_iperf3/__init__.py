"""iperf3 JSON results (``iperf3 -J``) as rda-pipeline speed tests."""
