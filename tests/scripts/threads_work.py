import threading
from concurrent.futures import ThreadPoolExecutor


def main():
    results = []
    lock = threading.Lock()

    def work(n):
        with lock:
            results.append(n * n)
        return n

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(16)))
    return sorted(results)
