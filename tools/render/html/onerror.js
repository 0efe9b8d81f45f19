// The first script of the body: errors of anything after it are kept.
window.onerror=function(msg,src,line,col){var b=document.body;b.dataset.errors=(b.dataset.errors?b.dataset.errors+'\n':'')+msg+' (line '+line+':'+col+')';};
