// giltrace report --html: zoom, pan, the axis, the readout, finding links
// (embedded by tools/html-assets.c).  Reads the geometry and the window
// from the timeline's data- attributes.
(function(){
'use strict';
var SVGNS='http://www.w3.org/2000/svg';
var root=document.getElementById('timeline'),plot=document.getElementById('plot');
var axis=document.getElementById('axis'),grid=document.getElementById('grid');
var rangeText=document.getElementById('range'),readout=document.getElementById('readout');
var COLS=+plot.dataset.columns,FROM=+plot.dataset.fromNs,TO=+plot.dataset.toNs;
var H=+plot.getAttribute('height'),LABEL_W=+root.dataset.labelW,PLOT_Y=+root.dataset.plotY;
var AXIS_Y=+root.dataset.axisY,LANE_H=+root.dataset.laneH,RIGHT=+root.dataset.rightPad;
var NS_PER_COL=(TO-FROM)/COLS,MIN_W=Math.min(COLS,4),FOCUS_W=Math.max(MIN_W,COLS/16);
var view={x:0,w:COLS},plotW=+plot.getAttribute('width'),current=0,drag=null,eatClick=false;
function unit(ns){return ns>=1e9?[1e9,'s']:ns>=1e6?[1e6,'ms']:ns>=1e3?[1e3,'us']:[1,'ns'];}
function fmt(ns,step,scale){var u=unit(scale),d=0,s=step/u[0];
  if(s<1)d=Math.min(9,Math.ceil(-Math.log10(s)-1e-9));return (ns/u[0]).toFixed(d)+' '+u[1];}
function dur(ns){return ns<1e3?ns.toFixed(0)+' ns':ns<1e6?(ns/1e3).toFixed(1)+' us':
  ns<1e9?(ns/1e6).toFixed(2)+' ms':(ns/1e9).toFixed(3)+' s';}
function el(name,attrs,text){var e=document.createElementNS(SVGNS,name);
  for(var k in attrs)e.setAttribute(k,attrs[k]);if(text!=null)e.textContent=text;return e;}
function clear(g){while(g.firstChild)g.removeChild(g.firstChild);}
function clampView(){if(!(view.w>=MIN_W))view.w=MIN_W;if(view.w>COLS)view.w=COLS;
  if(!(view.x>=0))view.x=0;if(view.x>COLS-view.w)view.x=COLS-view.w;}
function xOf(c){return LABEL_W+(c-view.x)/view.w*plotW;}
function flag(c,text,cls,left){if(c<view.x||c>view.x+view.w)return;
  axis.appendChild(el('text',{x:xOf(c)+(left?-3:3),y:AXIS_Y+12,'text-anchor':left?'end':'start',
    'class':'flag '+cls},text));}
function drawAxis(){
  clear(axis);clear(grid);
  var t0=FROM+view.x*NS_PER_COL,t1=FROM+(view.x+view.w)*NS_PER_COL,span=t1-t0;
  var raw=span/Math.max(2,Math.floor(plotW/110)),p=Math.pow(10,Math.floor(Math.log10(raw))),r=raw/p;
  var step=(r<=1?1:r<=2?2:r<=5?5:10)*p;
  axis.appendChild(el('line',{x1:LABEL_W,x2:LABEL_W+plotW,y1:PLOT_Y-0.5,y2:PLOT_Y-0.5}));
  for(var i=Math.ceil(t0/step);i*step<=t1;i++){var t=i*step,x=LABEL_W+(t-t0)/span*plotW;
    axis.appendChild(el('line',{x1:x,x2:x,y1:PLOT_Y-6,y2:PLOT_Y}));
    grid.appendChild(el('line',{x1:x,x2:x,y1:PLOT_Y,y2:PLOT_Y+H}));
    axis.appendChild(el('text',{x:x+3,y:PLOT_Y-9},'+'+fmt(t,step,t1)));}
  var fins=plot.querySelectorAll('.mark.finalize');
  for(var j=0;j<fins.length;j++)flag(+fins[j].dataset.x,'finalization','finalize',true);
  var cur=current&&document.getElementById('mark-finding-'+current);
  if(cur)flag(+cur.dataset.x,'finding '+current,'finding',false);
  rangeText.textContent='+'+fmt(t0,span/1000,t1)+' to +'+fmt(t1,span/1000,t1)+' ('+dur(span)+')';}
function apply(){clampView();
  plot.setAttribute('viewBox',view.x+' 0 '+view.w+' '+H);
  root.dataset.view=Math.round(FROM+view.x*NS_PER_COL)+' '+Math.round(FROM+(view.x+view.w)*NS_PER_COL);
  drawAxis();}
function layout(){plotW=Math.max(50,Math.floor(root.getBoundingClientRect().width-LABEL_W-RIGHT));
  plot.setAttribute('width',plotW);}
function zoomAt(f,factor){var at=view.x+f*view.w,w=Math.min(COLS,Math.max(MIN_W,view.w*factor));
  view={x:at-f*w,w:w};apply();}
plot.addEventListener('wheel',function(e){e.preventDefault();
  var k=e.deltaMode===1?16:e.deltaMode===2?400:1,r=plot.getBoundingClientRect();
  if(Math.abs(e.deltaX)>Math.abs(e.deltaY)){view.x+=e.deltaX*k/r.width*view.w;apply();return;}
  zoomAt(Math.min(1,Math.max(0,(e.clientX-r.left)/r.width)),Math.pow(1.0015,e.deltaY*k));},{passive:false});
plot.addEventListener('pointerdown',function(e){if(e.button!==0)return;eatClick=false;
  drag={x:e.clientX,vx:view.x,moved:false};});
window.addEventListener('pointermove',function(e){
  if(drag){var dx=e.clientX-drag.x;
    if(!drag.moved&&Math.abs(dx)>3){drag.moved=true;plot.classList.add('dragging');}
    if(drag.moved){view.x=drag.vx-dx/plotW*view.w;apply();}}
  showReadout(e);});
window.addEventListener('pointerup',function(){if(drag&&drag.moved)eatClick=true;drag=null;
  plot.classList.remove('dragging');});
plot.addEventListener('click',function(e){if(eatClick){e.preventDefault();e.stopPropagation();}
  eatClick=false;},true);
function showReadout(e){var r=plot.getBoundingClientRect();
  if(e.clientX<r.left||e.clientX>r.right||e.clientY<r.top||e.clientY>r.bottom)return;
  var c=view.x+(e.clientX-r.left)/r.width*view.w,t=FROM+c*NS_PER_COL;
  var label=document.getElementById('lname-'+Math.floor((e.clientY-r.top)/LANE_H));
  var g=e.target&&e.target.parentNode,state=g&&g.dataset&&g.dataset.state;
  readout.textContent='+'+fmt(t,view.w*NS_PER_COL/1000,t)+(label?' \u00b7 '+label.dataset.label:'')+
    (state?' \u00b7 '+state:'');}
document.getElementById('zoom-in').addEventListener('click',function(){zoomAt(0.5,1/1.5);});
document.getElementById('zoom-out').addEventListener('click',function(){zoomAt(0.5,1.5);});
document.getElementById('reset').addEventListener('click',function(){view={x:0,w:COLS};apply();});
function focusFinding(n){var mark=document.getElementById('mark-finding-'+n);if(!mark)return;
  if(current){var om=document.getElementById('mark-finding-'+current),
    ob=document.getElementById('finding-'+current+'-text');
    if(om)om.classList.remove('hl');if(ob)ob.classList.remove('current');}
  var block=document.getElementById('finding-'+n+'-text');if(block)block.classList.add('current');
  mark.classList.add('hl');mark.parentNode.appendChild(mark);
  current=n;document.body.dataset.focus='finding-'+n;
  view={x:+mark.dataset.x-FOCUS_W/2,w:FOCUS_W};apply();
  document.getElementById('tl-wrap').scrollIntoView({block:'start'});}
function fromHash(){var m=/^#finding-(\d+)$/.exec(location.hash);if(m)focusFinding(+m[1]);}
window.addEventListener('hashchange',fromHash);
var shows=document.querySelectorAll('a.show-finding');
for(var i=0;i<shows.length;i++)shows[i].addEventListener('click',function(e){
  if(location.hash===this.getAttribute('href')){e.preventDefault();focusFinding(+this.dataset.finding);}});
window.addEventListener('resize',function(){layout();apply();});
layout();apply();fromHash();
document.body.dataset.ready='1';
})();
