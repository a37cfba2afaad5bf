with open("report.txt", "w") as stream:
    stream.write("written by a snippet\n")
print("done")
